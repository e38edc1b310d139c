"""Averaging a model's logits over frequency-shifted copies of its input (test-time
augmentation): a model trained with spectrum shifts (``--spec-shift-bins``) then judges a
recording by several transpositions of its spectrum instead of one."""

from __future__ import annotations

import torch
from torch import nn

from instrlab.features.shift import shift_spectra


class ShiftAveraged(nn.Module):
    """``net`` in training mode; in eval mode the mean of its logits over ``shifts`` (mel
    bins, + moves the spectrum up), vacated bins filled with each clip's own minimum."""

    def __init__(self, net: nn.Module, shifts: tuple[int, ...]) -> None:
        super().__init__()
        self.net, self.shifts = net, tuple(shifts)
        self.n_classes = getattr(net, "n_classes", None)

    def single_pass(self) -> nn.Module:
        """The network alone: one pass per clip (training validates every epoch by it)."""
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.net(x)
        flat = x[:, 0] if x.dim() == 4 else x  # (B, 1, bins, frames) image batches
        floor = flat.flatten(1).amin(dim=1)
        total = None
        for s in self.shifts:
            moved = shift_spectra(flat, torch.full((len(flat),), s), floor) if s else flat
            out = self.net(moved[:, None] if x.dim() == 4 else moved)
            total = out if total is None else total + out
        return total / len(self.shifts)
