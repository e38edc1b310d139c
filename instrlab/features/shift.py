"""Moving spectrogram batches along the frequency axis (training augmentation and averaging
predictions over shifted inputs both need it, so it lives below both)."""

from __future__ import annotations

import torch


def shift_spectra(x: torch.Tensor, shifts: torch.Tensor, fill: float | torch.Tensor
                  ) -> torch.Tensor:
    """Move clip i of ``x`` (B, bins, frames) up by ``shifts[i]`` bins (down if negative).

    Vacated bins take ``fill``: one value, or one per clip (a tensor of B values).
    """
    n_bins = x.shape[1]
    if isinstance(fill, torch.Tensor):
        out = fill.to(x.dtype).view(-1, 1, 1).expand_as(x).clone()
    else:
        out = torch.full_like(x, fill)
    # one slice copy per clip: a batch-sized gather index took about 3x as long (6.0 against
    # 1.9 ms for a batch of 64 x 128 x 431 on 2 threads)
    for i, s in enumerate(shifts.tolist()):
        if s >= 0:
            out[i, s:] = x[i, : max(n_bins - s, 0)]
        else:
            out[i, : max(n_bins + s, 0)] = x[i, -s:]
    return out
