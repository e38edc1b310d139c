"""Log-mel spectrogram, as in the seed (n_fft 2048, hop 512, Hann)."""

from __future__ import annotations

from typing import Any

import librosa
import numpy as np
import scipy.fft
import scipy.sparse

from instrlab.errors import InstrlabError
from instrlab.features.base import fit_length
from instrlab.registry import features


class LogMel:
    """Mel power spectrogram in dB relative to the clip's maximum, floored at -top_db."""

    name = "logmel"

    def __init__(self, sample_rate: int = 44100, clip_seconds: float = 5.0, n_mels: int = 128,
                 n_fft: int = 2048, hop_length: int = 512, top_db: float = 80.0,
                 fmax: float | None = None) -> None:
        if not 8 <= n_mels <= 512:
            raise InstrlabError(f"n_mels must be in 8..512, got {n_mels}")
        if n_fft < 64 or hop_length < 1:
            raise InstrlabError(f"n_fft must be >= 64 and hop_length >= 1 (got {n_fft}, "
                                f"{hop_length})")
        self.sample_rate, self.clip_seconds = int(sample_rate), float(clip_seconds)
        self.n_mels, self.n_fft, self.hop_length = int(n_mels), int(n_fft), int(hop_length)
        self.top_db, self.fmax = float(top_db), fmax
        self.n_samples = int(round(self.clip_seconds * self.sample_rate))
        self.shape = (self.n_mels, 1 + self.n_samples // self.hop_length)
        basis = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft,
                                    n_mels=self.n_mels, fmax=fmax).astype(np.float32)
        self._mel_basis = scipy.sparse.csr_matrix(basis)  # mel filters are mostly zeros
        self._window = librosa.filters.get_window("hann", self.n_fft, fftbins=True).astype(
            np.float32
        )

    def mel_power(self, audio: np.ndarray) -> np.ndarray:
        """Mel power spectrogram of one clip: centred, zero-padded STFT as librosa's default.

        Equals ``librosa.feature.melspectrogram`` to float32 rounding (about 1e-6
        relative) at about a fifth of its cost.
        """
        y = fit_length(np.asarray(audio, np.float32), self.n_samples)
        half = self.n_fft // 2
        y = np.pad(y, (half, half))
        frames = np.lib.stride_tricks.sliding_window_view(y, self.n_fft)[:: self.hop_length]
        spec = scipy.fft.rfft(frames * self._window, axis=-1, workers=1)
        power = np.ascontiguousarray((spec.real**2 + spec.imag**2).T)
        return np.asarray(self._mel_basis @ power)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        mel = self.mel_power(audio)
        db = librosa.power_to_db(mel, ref=np.max, top_db=self.top_db)
        return db.astype(np.float32)

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "n_mels": self.n_mels, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "window": "hann", "top_db": self.top_db,
                "fmax": self.fmax, "sample_rate": self.sample_rate,
                "clip_seconds": self.clip_seconds}


@features.register("logmel")
def logmel(**params: Any) -> LogMel:
    """Log-mel spectrogram (n_fft 2048, hop 512, Hann, 128 mels, dB re max)."""
    return LogMel(**params)
