"""The seed experiment's reported results (validation split), for side-by-side comparison."""

from __future__ import annotations

SEED_MACRO_F1: float = 0.92
"""Macro-averaged F1 the seed reported on its 20 % validation split."""

SEED_F1: dict[str, float] = {
    "acoustic_grand_piano": 0.82,
    "nylon_acoustic_guitar": 0.93,
    "string_ensemble_1": 0.93,
    "piccolo": 0.97,
    "celesta": 0.87,
    "acoustic_bass": 0.78,
    "trumpet": 0.90,
    "square_wave_lead": 0.99,
    "hammond_organ": 0.87,
    "violin": 0.97,
    "soprano_sax": 0.96,
    "new_age_pad": 1.00,
}
"""Per-instrument F1 the seed reported, keyed by the ``seed12`` instrument names."""

SEED_PARAMS: int = 855_948
"""Trainable parameters of the seed's CNN at 3x400x400 input with 12 classes."""
