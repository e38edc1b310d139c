"""Synthesized datasets: configuration, building, statistics and reading.

``instrlab.dataset.config`` is light; the builder and store (numpy, the synth, features)
load on first use, so the command line can read ``DatasetConfig`` defaults quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from instrlab.dataset.config import DatasetConfig
from instrlab.paths import cache_dir

_LAZY = {"generate_dataset": "build", "FeatureDataset": "store", "SynthDataset": "store",
         "open_dataset": "store", "split_indices": "store"}

__all__ = ["DatasetConfig", "cache_dir", *_LAZY]


def __getattr__(name: str) -> Any:  # PEP 562
    if name in _LAZY:
        return getattr(importlib.import_module(f"instrlab.dataset.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
