"""Model factories: the seed CNN's exact size, the default model's shapes, registry errors."""

from __future__ import annotations

import pytest
import torch

from instrlab.errors import InstrlabError, UnknownNameError
from instrlab.models.mel_cnn import mel_cnn
from instrlab.models.seed_cnn import seed_cnn
from instrlab.registry import models


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("shape", [(3, 400, 400), (1, 400, 400)])
def test_seed_cnn_has_the_seed_parameter_count(shape: tuple[int, ...]) -> None:
    assert n_params(seed_cnn(shape, 12)) == 855_948


def test_seed_cnn_accepts_grayscale_and_rgb() -> None:
    model = seed_cnn((1, 400, 400), 12).eval()
    with torch.no_grad():
        gray = torch.rand(2, 1, 400, 400)
        out = model(gray)
        assert out.shape == (2, 12)
        rgb = model(gray.expand(-1, 3, -1, -1).contiguous())
    torch.testing.assert_close(out, rgb)


def test_seed_cnn_flatten_size_follows_input() -> None:
    model = seed_cnn((1, 128, 200), 5, in_channels=1)
    assert model(torch.rand(3, 1, 128, 200)).shape == (3, 5)
    with pytest.raises(InstrlabError, match="at least"):
        seed_cnn((1, 30, 30), 5)


@pytest.mark.parametrize("batch_shape", [(4, 128, 431), (4, 1, 128, 431)])
def test_mel_cnn_output_shape(batch_shape: tuple[int, ...]) -> None:
    model = mel_cnn((128, 431), 12)
    out = model(torch.randn(*batch_shape))
    assert out.shape == (4, 12)
    assert torch.isfinite(out).all()


def test_mel_cnn_hyperparameters_and_gain_invariance() -> None:
    model = mel_cnn((1, 64, 100), 7, width=32, n_blocks=2, kernel_size=5, dropout=0.0).eval()
    x = torch.randn(2, 64, 100) * 10 - 40
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x - 7.0), rtol=1e-4, atol=1e-4)
    assert model(x).shape == (2, 7)
    with pytest.raises(InstrlabError, match="frames"):
        mel_cnn((64, 8), 7)
    with pytest.raises(InstrlabError, match="bins, frames"):
        mel_cnn((3, 64, 100), 7)


def test_models_are_registered() -> None:
    assert {"seed_cnn", "mel_cnn", "mel_cnn_bands"} <= set(models._entries)
    assert models._entries["mel_cnn"].factory is mel_cnn
    bands = models._entries["mel_cnn_bands"].factory((128, 431), 12)
    assert bands.front.__class__.__name__ == "FreqFrontEnd"  # the front end, 8 filters


def test_unknown_model_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'seed_cnn'"):
        models.get("seed_cn")


def test_mel_cnn_frequency_front_end() -> None:
    """``freq_channels``: filters shared over frequency, max-pooled over bands of bins."""
    model = mel_cnn((128, 431), 12, freq_channels=8, freq_pool=8).eval()
    assert model.front.__class__.__name__ == "FreqFrontEnd"
    x = torch.randn(3, 128, 431) * 10 - 40
    with torch.no_grad():
        assert model.front(model.norm(x)).shape == (3, 8 * 16, 431 // 4)
        out = model(x)
        torch.testing.assert_close(out, model(x + 5.0), rtol=1e-4, atol=1e-4)  # gain
    assert out.shape == (3, 12)
    with torch.no_grad():  # a spectrum moved by one bin inside the pooled bands: close
        moved = torch.roll(x, 1, dims=1)
        front, front_moved = model.front(model.norm(x)), model.front(model.norm(moved))
        other = model.front(model.norm(torch.randn_like(x) * 10 - 40))
    assert (front - front_moved).abs().mean() < (front - other).abs().mean()
    strided = mel_cnn((128, 431), 12, freq_channels=8, freq_stride=4)
    assert strided.front(strided.norm(x)).shape == (3, 8 * 16, 431 // 4)
    for bad in ({"freq_channels": -1}, {"freq_pool": 0}, {"freq_pool": 500},
                {"freq_stride": 3}, {"freq_stride": 0}):
        with pytest.raises(InstrlabError, match="freq_channels >= 0, freq_pool"):
            mel_cnn((128, 431), 12, **bad)
