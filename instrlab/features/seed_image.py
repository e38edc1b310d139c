"""The seed's model input: a 400x400 grayscale mel-spectrogram image in [0, 1].

The seed drew the spectrogram with a plotting library, saved a PNG and resized it; here
the image is computed straight from the array. It is stored with one channel; models
that want three (the seed's CNN) replicate it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import zoom

from instrlab.features.logmel import LogMel
from instrlab.registry import features


class SeedImage:
    """Log-mel dB image, low frequencies at the bottom, resized to ``size`` x ``size``."""

    name = "seed_image"

    def __init__(self, sample_rate: int = 44100, clip_seconds: float = 5.0, size: int = 400,
                 n_mels: int = 128) -> None:
        self._mel = LogMel(sample_rate, clip_seconds, n_mels=n_mels)
        self.sample_rate, self.n_samples = self._mel.sample_rate, self._mel.n_samples
        self.size = int(size)
        self.shape = (1, self.size, self.size)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        db = self._mel(audio)  # (n_mels, frames) in [-top_db, 0]
        img = (db[::-1] + self._mel.top_db) / self._mel.top_db
        factors = (self.size / img.shape[0], self.size / img.shape[1])
        out = zoom(img, factors, order=1, grid_mode=True, mode="nearest")
        return np.clip(out, 0.0, 1.0).astype(np.float32)[None]

    def params(self) -> dict[str, Any]:
        return {**self._mel.params(), "name": self.name, "size": self.size}


@features.register("seed_image")
def seed_image(**params: Any) -> SeedImage:
    """The seed's 400x400 spectrogram image (1 channel, replicated to 3 by seed_cnn)."""
    return SeedImage(**params)
