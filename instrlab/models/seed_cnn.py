"""The seed experiment's CNN, reproduced layer for layer (855,948 parameters at 400x400)."""

from __future__ import annotations

import torch
from torch import nn

from instrlab.errors import InstrlabError
from instrlab.registry import models

SEED_CHANNELS = (8, 16, 32, 128)


def conv_out_size(size: int, n_blocks: int = len(SEED_CHANNELS)) -> int:
    """Spatial size after ``n_blocks`` of 3x3 valid convolution + 2x2 max pooling."""
    for _ in range(n_blocks):
        size = (size - 2) // 2
    return size


class SeedCNN(nn.Module):
    """Four Conv(3x3) -> BatchNorm -> ReLU -> MaxPool(2) blocks, dropout, one linear layer."""

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        height, width = int(input_shape[-2]), int(input_shape[-1])
        out_h, out_w = conv_out_size(height), conv_out_size(width)
        if out_h < 1 or out_w < 1:
            raise InstrlabError(
                f"seed_cnn needs inputs of at least 46x46 pixels, got {height}x{width}; "
                "use larger features or another model"
            )
        self.in_channels = in_channels
        blocks: list[nn.Module] = []
        prev = in_channels
        for ch in SEED_CHANNELS:
            blocks += [nn.Conv2d(prev, ch, 3), nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(2)]
            prev = ch
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(prev * out_h * out_w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # (B, H, W) -> (B, 1, H, W)
            x = x.unsqueeze(1)
        if x.shape[1] == 1 and self.in_channels != 1:
            x = x.expand(-1, self.in_channels, -1, -1)  # grayscale replicated, as the seed's RGB
        x = self.features(x)
        return self.fc(self.dropout(torch.flatten(x, 1)))


@models.register("seed_cnn")
def seed_cnn(
    input_shape: tuple[int, ...], n_classes: int, in_channels: int = 3, dropout: float = 0.5
) -> nn.Module:
    """The seed's 4-block CNN on 400x400 spectrogram images (855,948 params for 12 classes)."""
    return SeedCNN(tuple(input_shape), n_classes, in_channels=in_channels, dropout=dropout)


seed_cnn.default_features = "seed_image"  # type: ignore[attr-defined]
