"""The seed's dataset statistics: occurrences per instrument, instruments per sample."""

from __future__ import annotations

from typing import Any

import numpy as np


def compute_stats(labels: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Counts and shares per instrument and the histogram of instruments per sample."""
    labels = np.asarray(labels)
    n = int(labels.shape[0])
    counts = labels.sum(axis=0).astype(int)
    per_sample = labels.sum(axis=1).astype(int)
    hist = np.bincount(per_sample, minlength=int(per_sample.max(initial=0)) + 1)
    return {
        "n_samples": n,
        "occurrences": {name: int(c) for name, c in zip(names, counts)},
        "occurrence_share": {name: (float(c) / n if n else 0.0) for name, c in zip(names, counts)},
        "instruments_per_sample": {str(k): int(v) for k, v in enumerate(hist) if k > 0},
    }
