"""Training-time batch augmentation: seeded, label-consistent, and used by real training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from instrlab.errors import InstrlabError
from instrlab.features.shift import shift_spectra
from instrlab.training import TrainConfig
from instrlab.training.batch_augment import SpecAugmentConfig, augment_batch, mix_db, mix_styles

ALL = SpecAugmentConfig(eq_db=10, freq_masks=2, time_masks=2, mixup_prob=0.5)


def batch(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (-80 * torch.rand(n, 24, 40, generator=g)).clamp(-80, 0)
    y = (torch.rand(n, 5, generator=g) < 0.3).float()
    return x, y


def run(cfg: SpecAugmentConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch()
    return augment_batch(x, y, cfg, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cfg", [SpecAugmentConfig(eq_db=6), SpecAugmentConfig(freq_masks=2),
                                 SpecAugmentConfig(time_masks=2), SpecAugmentConfig(shift_bins=3),
                                 SpecAugmentConfig(mixup_prob=1.0),
                                 SpecAugmentConfig(style_mix_prob=1.0), ALL])
def test_each_augmentation_is_deterministic_given_the_seed(cfg: SpecAugmentConfig) -> None:
    xa, ya = run(cfg, 7)
    xb, yb = run(cfg, 7)
    xc, _ = run(cfg, 8)
    x, y = batch()
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(xa, xc)
    assert xa.shape == x.shape and not torch.equal(xa, x)
    assert torch.equal(batch()[0], x)  # the input batch is left alone


def test_inactive_config_returns_the_batch_unchanged() -> None:
    x, y = batch()
    xo, yo = augment_batch(x, y, SpecAugmentConfig(), torch.Generator())
    assert xo is x and yo is y


def test_mixup_labels_are_the_union_and_levels_stay_in_range() -> None:
    x, y = batch(n=64)
    xo, yo = augment_batch(x, y, SpecAugmentConfig(mixup_prob=1.0),
                           torch.Generator().manual_seed(1))
    assert torch.all(yo >= y)
    mixed = (xo != x).flatten(1).any(dim=1)
    assert mixed.sum() > 50
    # every mixed label row is the union of its own and one other row of the batch
    for i in torch.nonzero(mixed)[:, 0].tolist():
        assert any(torch.equal(yo[i], torch.maximum(y[i], y[j])) for j in range(len(y)))
    assert float(xo.max()) <= 1e-5 and float(xo.min()) >= -80.0


def test_style_mix_moves_each_bins_statistics_between_two_clips() -> None:
    gen = torch.Generator().manual_seed(0)
    n, bins = 32, 24
    levels = -70 + 60 * torch.rand(n, bins, 1, generator=gen)  # each clip's own coloration
    x = levels + torch.randn(n, bins, 50, generator=gen)
    out = mix_styles(x, 1.0, 0.3, -80.0, torch.Generator().manual_seed(1))
    mu, mu_out = x.mean(dim=2), out.mean(dim=2)
    moved = (mu_out - mu).abs().amax(dim=1) > 1.0
    assert moved.sum() > n // 2  # most clips take on part of another clip's coloration
    lo, hi = mu.amin(dim=0), mu.amax(dim=0)  # a convex mix stays within the batch's range
    assert torch.all(mu_out >= lo - 1e-3) and torch.all(mu_out <= hi + 1e-3)
    # the notes' shape over time is kept: each bin is an affine map of the input
    centred = (x - x.mean(2, keepdim=True)) / x.std(2, keepdim=True)
    centred_out = (out - out.mean(2, keepdim=True)) / out.std(2, keepdim=True)
    assert torch.allclose(centred, centred_out, atol=1e-3)
    kept = mix_styles(x, 0.0, 0.3, -80.0, torch.Generator().manual_seed(1))
    assert torch.allclose(kept, x, atol=1e-4)


def test_mix_db_is_a_power_sum() -> None:
    a = torch.full((1, 2, 3), -10.0)
    out = mix_db(a, a.clone(), floor_db=-80)  # two equal powers: +3.01 dB, then re-peaked
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-5)
    b = torch.tensor([[[0.0, -90.0]]])
    assert torch.allclose(mix_db(b, torch.full_like(b, -200.0), -80), torch.tensor([[[0.0, -80]]]))


def test_shift_moves_bins_and_fills_with_the_floor() -> None:
    x = torch.arange(5.0).view(1, 5, 1).repeat(2, 1, 2)
    out = shift_spectra(x, torch.tensor([1, -2]), -80.0)
    assert out[0, :, 0].tolist() == [-80.0, 0.0, 1.0, 2.0, 3.0]
    assert out[1, :, 1].tolist() == [2.0, 3.0, 4.0, -80.0, -80.0]


def test_shift_matches_a_gather_over_every_bin_including_shifts_past_the_edge() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(40, 6, 3, generator=gen)
    shifts = torch.randint(-8, 9, (40,), generator=gen)
    src = torch.arange(6)[None, :] - shifts[:, None]  # output bin b reads input bin b - s
    valid = ((src >= 0) & (src < 6))[:, :, None].expand_as(x)
    expected = torch.gather(x, 1, src.clamp(0, 5)[:, :, None].expand_as(x))
    expected = torch.where(valid, expected, torch.full_like(x, -80.0))
    assert shifts.abs().max() > 6 and torch.equal(shift_spectra(x, shifts, -80.0), expected)


def test_four_dim_batches_keep_their_shape() -> None:
    x, y = batch()
    xo, _ = augment_batch(x[:, None], y, ALL, torch.Generator().manual_seed(0))
    assert xo.shape == (16, 1, 24, 40)


@pytest.mark.parametrize("field,value", [("eq_db", -1.0), ("freq_masks", 17),
                                         ("mixup_prob", 1.5), ("shift_bins", 40),
                                         ("time_mask_frames", 0), ("floor_db", 0.0),
                                         ("style_mix_prob", -0.1), ("style_mix_alpha", 0.0)])
def test_bad_settings_are_errors(field: str, value: float) -> None:
    with pytest.raises(InstrlabError, match=f"spec augment: {field}"):
        SpecAugmentConfig(**{field: value})


def test_train_config_accepts_and_logs_it_as_a_nested_dict() -> None:
    cfg = TrainConfig(spec_augment={"eq_db": 4.0, "mixup_prob": 0.25})  # type: ignore[arg-type]
    assert cfg.spec_augment == SpecAugmentConfig(eq_db=4.0, mixup_prob=0.25)
    assert cfg.to_dict()["spec_augment"]["eq_db"] == 4.0
    assert TrainConfig(**cfg.to_dict()) == cfg


def test_training_with_augmentation_is_repeatable(tmp_path: Path) -> None:
    from test_training import make_dataset
    from test_training import run as train

    data = make_dataset(tmp_path)
    aug = SpecAugmentConfig(eq_db=6, freq_masks=1, freq_mask_bins=2, time_masks=1,
                            time_mask_frames=4, mixup_prob=0.5)
    _, one = train(data, spec_augment=aug, epochs=3)
    _, two = train(data, spec_augment=aug, epochs=3)
    _, plain = train(data, epochs=3)
    losses = [h["train_loss"] for h in one.history]
    assert losses == [h["train_loss"] for h in two.history]
    assert losses != [h["train_loss"] for h in plain.history]
    assert one.best_val_macro_f1 > 0.5  # still learns the task through the augmentation
