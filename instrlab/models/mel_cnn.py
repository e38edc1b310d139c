"""1-D CNNs over time that treat the mel bins as input channels (mel_cnn is the default)."""

from __future__ import annotations

import torch
from torch import nn

from instrlab.errors import InstrlabError
from instrlab.registry import models


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv1d (same padding for stride 1) -> BatchNorm1d -> ReLU."""
    pad = (kernel - 1) // 2 if stride == 1 else 0
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class ClipNorm(nn.Module):
    """Standardise each clip over all bins and frames (gain-invariant), then a per-bin affine.

    The per-clip step removes loudness and soundfont level differences; the BatchNorm over
    bins learns which frequency bands matter without fixing a dB scale in the code.
    """

    def __init__(self, n_bins: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.bins = nn.BatchNorm1d(n_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # E[x^2] - E[x]^2 is ~10x faster than torch.std on CPU and exact enough in float32
        flat = x.flatten(1)
        mean = flat.mean(dim=1)
        var = (flat * flat).mean(dim=1) - mean * mean
        scale = torch.rsqrt(var.clamp_min(0) + self.eps)
        return self.bins((x - mean[:, None, None]) * scale[:, None, None])


class FreqFrontEnd(nn.Module):
    """Frames averaged in groups of ``stride``, then filters shared across frequency (every
    ``freq_stride`` bins) and max-pooled over bands of ``pool`` bins: the same spectral
    shape a few bins higher or lower (another recording, another pitch) gives the same
    channels. (B, F, T) -> (B, channels * (F // pool), T // stride)."""

    def __init__(self, channels: int, pool: int, stride: int, freq_stride: int = 1,
                 kernel: int = 9) -> None:
        super().__init__()
        self.frames = nn.AvgPool1d(stride)
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (kernel, 1), stride=(freq_stride, 1),
                      padding=(kernel // 2, 0), bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d((pool // freq_stride, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.frames(x).unsqueeze(1))).flatten(1, 2)


class MelCNN(nn.Module):
    """Patch stem over time, conv blocks with max pooling, global max+mean pooling, linear;
    optionally a :class:`FreqFrontEnd` before the stem (``freq_channels`` > 0)."""

    def __init__(
        self, n_bins: int, n_classes: int, width: int = 128, n_blocks: int = 3,
        kernel_size: int = 3, stem_stride: int = 4, dropout: float = 0.3,
        freq_channels: int = 0, freq_pool: int = 8, freq_stride: int = 1,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.norm = ClipNorm(n_bins)
        self.front: nn.Module = nn.Identity()
        if freq_channels:  # the front end strides over time: the stem does not
            self.front = FreqFrontEnd(freq_channels, freq_pool, stem_stride, freq_stride)
            n_bins, stem_stride = freq_channels * (n_bins // freq_pool), 1
        self.stem = conv_bn_relu(n_bins, width, max(stem_stride, kernel_size), stem_stride)
        blocks: list[nn.Module] = []
        for _ in range(n_blocks):
            blocks += [conv_bn_relu(width, width, kernel_size), nn.MaxPool1d(2)]
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (B, 1, F, T) -> (B, F, T)
            x = x.flatten(1, 2)
        x = self.blocks(self.stem(self.front(self.norm(x))))
        pooled = torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)
        return self.head(self.dropout(pooled))


@models.register("mel_cnn")
def mel_cnn(
    input_shape: tuple[int, ...], n_classes: int, width: int = 128, n_blocks: int = 3,
    kernel_size: int = 3, stem_stride: int = 4, dropout: float = 0.3, freq_channels: int = 0,
    freq_pool: int = 8, freq_stride: int = 1,
) -> nn.Module:
    """Fast 1-D CNN over log-mel frames (mel bins as channels); the default model."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise InstrlabError(
            f"mel_cnn needs (bins, frames) features, got shape {shape}; use logmel features"
        )
    n_bins, n_frames = shape
    if n_blocks < 1:  # torch would build a model without blocks and say nothing
        raise InstrlabError(f"mel_cnn needs n_blocks >= 1, got {n_blocks}; fix --model-param "
                            "n_blocks")
    min_frames = stem_stride * 2**n_blocks + max(stem_stride, kernel_size)
    if n_frames < min_frames:
        raise InstrlabError(
            f"mel_cnn with {n_blocks} blocks needs >= {min_frames} frames, got {n_frames}; "
            "use longer clips or fewer n_blocks"
        )
    if freq_channels < 0 or not 1 <= freq_pool <= n_bins or freq_stride < 1 or (
            freq_pool % freq_stride):
        raise InstrlabError(f"mel_cnn needs freq_channels >= 0, freq_pool in 1..{n_bins} and a "
                            f"freq_stride that divides it, got {freq_channels}, {freq_pool} "
                            f"and {freq_stride}")
    return MelCNN(n_bins, n_classes, width=width, n_blocks=n_blocks, kernel_size=kernel_size,
                  stem_stride=stem_stride, dropout=dropout, freq_channels=freq_channels,
                  freq_pool=freq_pool, freq_stride=freq_stride)


mel_cnn.default_features = "logmel"  # type: ignore[attr-defined]


@models.register("mel_cnn_bands")
def mel_cnn_bands(
    input_shape: tuple[int, ...], n_classes: int, width: int = 128, n_blocks: int = 3,
    kernel_size: int = 3, stem_stride: int = 4, dropout: float = 0.3, freq_channels: int = 8,
    freq_pool: int = 8, freq_stride: int = 2,
) -> nn.Module:
    """mel_cnn with a frequency front end (8 filters every 2nd bin, bands of 8 bins): ahead
    on the small folds, behind at full size with registers (README, Generalization)."""
    return mel_cnn(input_shape, n_classes, width=width, n_blocks=n_blocks,
                   kernel_size=kernel_size, stem_stride=stem_stride, dropout=dropout,
                   freq_channels=freq_channels, freq_pool=freq_pool, freq_stride=freq_stride)
