"""Training settings: the one home of their defaults (no torch import, so --help is fast).

``TrainConfig()`` is what ``instrlab main``, ``mlflow run .`` and the Python API train with;
the seed's plain protocol is a preset (:mod:`instrlab.config`), not other defaults here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from instrlab.errors import InstrlabError

SCHEDULERS = ("none", "cosine", "onecycle")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
"""Devices training accepts (checked without torch): ``auto`` picks CUDA when available."""


@dataclass
class SpecAugmentConfig:
    """Strengths of the batch augmentations; ``SpecAugmentConfig()`` is off.

    What training uses by default is :class:`TrainConfig`'s ``spec_augment``.
    """

    eq_db: float = 0.0
    """Add a random EQ curve over the mel bins, within +-eq_db dB."""
    eq_knots: int = 8
    """Control points of the EQ curve (linearly interpolated over the bins): few give a
    smooth coloration, many (32 over 128 bins) move neighbouring partials independently."""
    freq_masks: int = 0
    """Number of frequency bands blanked per clip (SpecAugment)."""
    freq_mask_bins: int = 8
    """Widest blanked frequency band, in mel bins."""
    time_masks: int = 0
    """Number of time spans blanked per clip (SpecAugment)."""
    time_mask_frames: int = 40
    """Longest blanked time span, in frames."""
    shift_bins: int = 0
    """Move each clip's spectrum up or down by up to this many mel bins (timbre and
    tuning differences between soundfonts); the bins moved in take the silence floor."""
    mixup_prob: float = 0.0
    """Share of clips mixed with another clip of the batch; the labels are their union."""
    mixup_gain_db: float = 6.0
    """The added clip's level relative to the first, drawn from +-mixup_gain_db dB."""
    style_mix_prob: float = 0.0
    """Share of clips whose per-bin statistics over time (mean and spread of each mel bin:
    the recording's and room's coloration) are mixed with another clip's (frequency-wise
    MixStyle, Kim et al. / Schmid et al., for unseen recording devices)."""
    style_mix_alpha: float = 0.3
    """The mixing weight's Beta(alpha, alpha) distribution: small values keep mostly one
    clip's statistics or the other's."""
    floor_db: float = -80.0
    """The features' silence floor (``logmel``'s ``-top_db``); mixing clips to it."""

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.eq_db <= 40, "eq_db", "must be in 0..40"),
            (2 <= self.eq_knots <= 64, "eq_knots", "must be in 2..64"),
            (0 <= self.freq_masks <= 16, "freq_masks", "must be in 0..16"),
            (1 <= self.freq_mask_bins, "freq_mask_bins", "must be >= 1"),
            (0 <= self.time_masks <= 16, "time_masks", "must be in 0..16"),
            (1 <= self.time_mask_frames, "time_mask_frames", "must be >= 1"),
            (0 <= self.shift_bins <= 32, "shift_bins", "must be in 0..32"),
            (0 <= self.mixup_prob <= 1, "mixup_prob", "must be in 0..1"),
            (0 <= self.mixup_gain_db <= 40, "mixup_gain_db", "must be in 0..40"),
            (0 <= self.style_mix_prob <= 1, "style_mix_prob", "must be in 0..1"),
            (0 < self.style_mix_alpha <= 10, "style_mix_alpha", "must be in (0, 10]"),
            (self.floor_db < 0, "floor_db", "must be < 0"),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise InstrlabError(f"spec augment: {name} = {getattr(self, name)!r} {fix}")

    @property
    def active(self) -> bool:
        return bool(self.eq_db or self.freq_masks or self.time_masks or self.mixup_prob
                    or self.shift_bins or self.style_mix_prob)



@dataclass
class TrainConfig:
    """Optimisation and decision settings; the defaults are the robust pipeline's.

    Adam, batch 64 and peak rate 1e-3 are the seed's; 32 epochs (the seed: 20), batch
    augmentation with spectrum shifts, tuned thresholds and ``min_labels`` 1 were measured
    to generalize better (README, "Generalization").
    """

    epochs: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "onecycle"
    """``onecycle`` (peak ``lr``; measured best on the seed protocol), ``cosine`` or ``none``
    (the seed's constant rate)."""
    early_stopping_patience: int = 0
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    threshold: float = 0.5
    tune_thresholds: bool = True
    """Pick each instrument's threshold on the validation split (the best epoch's
    probabilities) instead of ``threshold``."""
    min_labels: int = 1
    """Every clip holds at least this many instruments: a clip with fewer over threshold
    is given its most probable ones (1 fits the seed protocol; 0 trusts thresholds alone)."""
    ema_decay: float = 0.0
    """Validate, select and keep an exponential moving average of the weights (per step;
    e.g. 0.998); 0 keeps the weights as trained."""
    spec_augment: SpecAugmentConfig = field(default_factory=lambda: SpecAugmentConfig(
        eq_db=10.0, eq_knots=32, freq_masks=2, time_masks=2, mixup_prob=0.5, shift_bins=4))
    """Batch augmentations drawn anew every epoch (see :mod:`instrlab.training.batch_augment`);
    measured to lift macro F1 on a held-out sample family (the folds of ``instrlab folds``)."""

    def __post_init__(self) -> None:
        if isinstance(self.spec_augment, dict):
            self.spec_augment = SpecAugmentConfig(**self.spec_augment)
        checks = [
            (self.epochs >= 1, "epochs", "must be an integer >= 1"),
            (self.batch_size >= 2, "batch_size", "must be an integer >= 2 (BatchNorm needs 2)"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", "must be a finite number > 0"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (self.early_stopping_patience >= 0, "early_stopping_patience",
             "must be >= 0 (0 turns early stopping off)"),
            (self.num_threads >= 0, "num_threads", "must be >= 0 (0 uses every core)"),
            (0.0 < self.threshold < 1.0, "threshold", "must lie strictly between 0 and 1"),
            (self.min_labels >= 0, "min_labels", "must be >= 0 (0 trusts the thresholds alone)"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1) (0 turns EMA off)"),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise InstrlabError(f"train config: {name} = {getattr(self, name)!r} {fix}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise InstrlabError(
                f"train config: device = {self.device!r} is unknown; use auto, cpu, cuda, "
                "cuda:N (N a GPU index) or mps"
            )
        if self.scheduler not in SCHEDULERS:
            raise InstrlabError(
                f"train config: scheduler = {self.scheduler!r} is unknown; "
                f"use one of {', '.join(SCHEDULERS)}"
            )

    def check_classes(self, n_classes: int) -> None:
        """Raise :class:`InstrlabError` for settings a dataset of ``n_classes`` cannot meet."""
        if self.min_labels > n_classes:
            raise InstrlabError(
                f"train config: min_labels = {self.min_labels} is more than the {n_classes} "
                "instruments of the dataset; lower it"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


