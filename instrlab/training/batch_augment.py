"""Training-time augmentation of log-mel batches, for robustness to unseen soundfonts.

Unlike :mod:`instrlab.synth.augment` (audio, fixed per sample when the dataset is rendered),
these draws change every epoch and cost nothing at generation time. All draws come from
one ``torch.Generator`` seeded by the training seed, on the CPU, so a run is repeatable
whatever the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from instrlab.features.shift import shift_spectra
from instrlab.training.config import SpecAugmentConfig


def _uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def eq_curves(gen: torch.Generator, n: int, n_bins: int, eq_db: float, knots: int) -> torch.Tensor:
    """``n`` smooth random curves (n, n_bins) in dB within +-eq_db."""
    points = _uniform(gen, (n, 1, knots), -eq_db, eq_db)
    return torch.nn.functional.interpolate(points, size=n_bins, mode="linear",
                                           align_corners=True)[:, 0]


def band_masks(gen: torch.Generator, n: int, size: int, count: int, width: int) -> torch.Tensor:
    """Boolean (n, size) masks of ``count`` random spans of up to ``width`` per row."""
    mask = torch.zeros(n, size, dtype=torch.bool)
    pos = torch.arange(size)
    for _ in range(count):
        w = (torch.rand(n, generator=gen) * (min(width, size) + 1)).long()
        start = (torch.rand(n, generator=gen) * (size - w + 1)).long()
        mask |= (pos >= start[:, None]) & (pos < (start + w)[:, None])
    return mask


def mix_db(a: torch.Tensor, b: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Power sum of two dB spectrograms, re-referenced to its maximum and floored."""
    scale = math.log(10) / 10
    mixed = torch.logaddexp(a * scale, b * scale) / scale
    peak = mixed.flatten(1).amax(dim=1).view(-1, *([1] * (mixed.dim() - 1)))
    return (mixed - peak).clamp_min(floor_db)


def mix_styles(x: torch.Tensor, prob: float, alpha: float, floor_db: float,
               gen: torch.Generator) -> torch.Tensor:
    """``x`` (B, bins, frames) with each chosen clip's per-bin mean and spread over time moved
    towards a partner clip's by a Beta(alpha, alpha) weight (frequency-wise MixStyle)."""
    n = x.shape[0]
    partner = torch.randperm(n, generator=gen)
    chosen = (torch.rand(n, generator=gen) < prob) & (partner != torch.arange(n))
    # torch's Beta sampler takes no generator; a seed drawn from ``gen`` keeps it repeatable
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=gen)))
    lam = torch.from_numpy(rng.beta(alpha, alpha, n)).float()
    lam = torch.where(chosen, lam, torch.ones(n)).to(x.device)[:, None, None]
    mu = x.mean(dim=2, keepdim=True)
    sig = x.std(dim=2, keepdim=True) + 1e-3
    p = partner.to(x.device)
    mixed_mu = lam * mu + (1 - lam) * mu[p]
    mixed_sig = lam * sig + (1 - lam) * sig[p]
    return ((x - mu) / sig * mixed_sig + mixed_mu).clamp_min(floor_db)


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: SpecAugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented copies of a batch ``x`` (B, bins, frames) or (B, 1, bins, frames), ``y`` (B, C).

    Draws are made on the CPU from ``gen`` and moved to ``x``'s device, in a fixed order:
    mixup, shift, EQ, style mix, frequency masks, time masks.
    """
    if not cfg.active:
        return x, y
    squeeze = x.dim() == 4
    if squeeze:
        x = x[:, 0]
    n, n_bins, n_frames = x.shape
    dev = x.device
    x = x.clone()
    if cfg.mixup_prob:
        partner = torch.randperm(n, generator=gen)
        chosen = (torch.rand(n, generator=gen) < cfg.mixup_prob) & (partner != torch.arange(n))
        gain = _uniform(gen, (n,), -cfg.mixup_gain_db, cfg.mixup_gain_db)
        idx = chosen.nonzero()[:, 0]
        if len(idx):
            other = x[partner[idx].to(dev)] + gain[idx].to(dev)[:, None, None]
            x[idx.to(dev)] = mix_db(x[idx.to(dev)], other, cfg.floor_db)
            y = y.clone()
            y[idx.to(dev)] = torch.maximum(y[idx.to(dev)], y[partner[idx].to(dev)])
    if cfg.shift_bins:
        shifts = torch.randint(-cfg.shift_bins, cfg.shift_bins + 1, (n,), generator=gen)
        x = shift_spectra(x, shifts, cfg.floor_db)
    if cfg.eq_db:
        x += eq_curves(gen, n, n_bins, cfg.eq_db, cfg.eq_knots).to(dev)[:, :, None]
    if cfg.style_mix_prob:
        x = mix_styles(x, cfg.style_mix_prob, cfg.style_mix_alpha, cfg.floor_db, gen)
    if cfg.freq_masks or cfg.time_masks:  # both blank to the same mean: one pass
        mask = torch.zeros(n, n_bins, n_frames, dtype=torch.bool, device=dev)
        if cfg.freq_masks:
            fmask = band_masks(gen, n, n_bins, cfg.freq_masks, cfg.freq_mask_bins)
            mask |= fmask.to(dev)[:, :, None]
        if cfg.time_masks:
            tmask = band_masks(gen, n, n_frames, cfg.time_masks, cfg.time_mask_frames)
            mask |= tmask.to(dev)[:, None, :]
        x = torch.where(mask, x.mean(dim=(1, 2), keepdim=True), x)
    return (x[:, None] if squeeze else x), y
