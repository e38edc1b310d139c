"""Training: settings, the loop, batch augmentation and metrics.

``instrlab.training.config`` imports no torch; the loop is loaded on first use, so
``from instrlab.training import TrainConfig`` stays cheap for the command line.
"""

from __future__ import annotations

from typing import Any

from instrlab.training.config import SCHEDULERS, SpecAugmentConfig, TrainConfig

_LOOP = ("EpochCallback", "TrainResult", "fit", "pick_device", "pos_weights", "predict_proba",
         "batches", "gather")

__all__ = ["SCHEDULERS", "SpecAugmentConfig", "TrainConfig", *_LOOP]


def __getattr__(name: str) -> Any:  # PEP 562: torch is imported only when the loop is used
    if name in _LOOP:
        from instrlab.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
