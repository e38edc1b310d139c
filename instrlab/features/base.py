"""What a feature extractor provides."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from instrlab.registry import features


class FeatureExtractor(Protocol):
    """Turns a mono clip of ``n_samples`` at ``sample_rate`` into an array of ``shape``."""

    name: str
    shape: tuple[int, ...]
    sample_rate: int
    n_samples: int

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Features of one clip (float32, ``shape``); pads or cuts audio to ``n_samples``."""
        ...

    def params(self) -> dict[str, Any]:
        """Everything that changes the output, for cache keys and MLflow."""
        ...


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad or cut ``audio`` to exactly ``n_samples``."""
    if len(audio) >= n_samples:
        return audio[:n_samples]
    return np.pad(audio, (0, n_samples - len(audio)))


def get_extractor(name: str, sample_rate: int = 44100, clip_seconds: float = 5.0,
                  **params: Any) -> FeatureExtractor:
    """Build the registered extractor ``name`` for clips of ``clip_seconds``."""
    return features.create(name, sample_rate=sample_rate, clip_seconds=clip_seconds, **params)
