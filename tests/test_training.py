"""A real (tiny) training run on a learnable synthetic dataset held in a memmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instrlab.errors import InstrlabError
from instrlab.models.mel_cnn import mel_cnn
from instrlab.training import (
    SpecAugmentConfig,
    TrainConfig,
    fit,
    gather,
    pick_device,
    pos_weights,
    predict_proba,
)

N, BINS, FRAMES, CLASSES = 384, 16, 32, 4


def make_dataset(tmp_path: Path) -> tuple[np.memmap, np.ndarray]:
    """Each class adds its own band of bins over a random stretch of frames, in dB-like noise."""
    rng = np.random.default_rng(0)
    labels = (rng.random((N, CLASSES)) < 0.35).astype(np.uint8)
    labels[labels.sum(1) == 0, rng.integers(0, CLASSES)] = 1
    feats = np.lib.format.open_memmap(
        tmp_path / "features.npy", mode="w+", dtype=np.float16, shape=(N, BINS, FRAMES)
    )
    for i in range(N):
        x = rng.normal(-60, 4, size=(BINS, FRAMES))
        for c in np.flatnonzero(labels[i]):
            start = rng.integers(0, FRAMES // 2)
            x[4 * c : 4 * c + 3, start : start + FRAMES // 2] += 30
        feats[i] = x
    feats.flush()
    return np.load(tmp_path / "features.npy", mmap_mode="r"), labels


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.memmap, np.ndarray]:
    return make_dataset(tmp_path_factory.mktemp("ds"))


def small_model() -> torch.nn.Module:
    return mel_cnn((BINS, FRAMES), CLASSES, width=16, n_blocks=2, dropout=0.1)


def run(data: tuple[np.memmap, np.ndarray], **kw: object):  # noqa: ANN201
    feats, labels = data
    # the loop alone: no batch augmentation, a flat 0.5 (TrainConfig's defaults are the
    # robust pipeline's, for real clips)
    cfg = TrainConfig(**{"epochs": 4, "batch_size": 32, "lr": 3e-3, "num_threads": 1,
                         "device": "cpu", "scheduler": "none",
                         "spec_augment": SpecAugmentConfig(), "tune_thresholds": False,
                         "min_labels": 0, **kw})
    torch.manual_seed(123)  # model init; fit seeds its own shuffling and dropout
    model = small_model()
    return model, fit(model, feats, labels, np.arange(0, 300), np.arange(300, N), cfg,
                      progress=False)


@pytest.mark.parametrize("scheduler", ["none", "onecycle"])
def test_training_learns(data: tuple[np.memmap, np.ndarray], scheduler: str) -> None:
    model, result = run(data, tune_thresholds=True, scheduler=scheduler,
                        epochs=4 if scheduler == "none" else 6)
    hist = result.history
    assert [h["epoch"] for h in hist] == list(range(1, len(hist) + 1))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert result.best_val_macro_f1 > 0.9  # chance is about 0.4
    assert result.best_val_macro_f1 == max(h["val_macro_f1"] for h in hist)
    assert result.train_samples_per_s > 0 and result.thresholds.shape == (CLASSES,)
    probs = predict_proba(model, data[0], np.arange(300, N))
    assert probs.shape == (N - 300, CLASSES) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()


def test_best_weights_are_restored(data: tuple[np.memmap, np.ndarray]) -> None:
    from instrlab.training.metrics import binarize, macro_f1

    model, result = run(data)
    probs = predict_proba(model, data[0], np.arange(300, N))
    f1 = macro_f1(data[1][300:], binarize(probs, 0.5))
    assert f1 == pytest.approx(result.best_val_macro_f1)


def test_same_seed_same_history(data: tuple[np.memmap, np.ndarray]) -> None:
    def strip(h: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in e.items() if k != "seconds"} for e in h]

    _, a = run(data, epochs=2, scheduler="cosine")
    _, b = run(data, epochs=2, scheduler="cosine")
    assert strip(a.history) == strip(b.history)
    assert a.history[1]["lr"] < a.history[0]["lr"]


def test_on_epoch_exception_stops_training(data: tuple[np.memmap, np.ndarray]) -> None:
    seen: list[int] = []

    class Stop(Exception):
        pass

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        seen.append(epoch)
        assert {"train_loss", "val_loss", "val_macro_f1"} <= set(metrics)
        raise Stop

    feats, labels = data
    with pytest.raises(Stop):
        fit(small_model(), feats, labels, np.arange(300), np.arange(300, N),
            TrainConfig(epochs=5, device="cpu"), on_epoch=on_epoch, progress=False)
    assert seen == [1]


def test_early_stopping_without_improvement(data: tuple[np.memmap, np.ndarray]) -> None:
    feats, labels = data
    frozen = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(BINS * FRAMES, CLASSES))
    cfg = TrainConfig(epochs=10, lr=1e-12, early_stopping_patience=2, device="cpu")
    result = fit(frozen, feats, labels, np.arange(300), np.arange(300, N), cfg, progress=False)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("lr", -1e-3), ("scheduler", "step"),
     ("early_stopping_patience", -1), ("threshold", 1.5), ("num_threads", -2),
     ("ema_decay", 1.0)],
)
def test_bad_config_raises(field: str, value: object) -> None:
    with pytest.raises(InstrlabError, match=field):
        TrainConfig(**{field: value})


def test_gather_widens_float16_exactly_as_numpy_does(tmp_path: Path) -> None:
    """Every float16 (subnormals, infinities, the dataset's dB range) comes out as numpy's
    float32 of it, from a memmap and from memory alike."""
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    every = every[~np.isnan(every)].reshape(-1, 7)[:, None, :]
    stored = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16,
                                       shape=every.shape)
    stored[:] = every
    rows = np.arange(0, len(every), 3)
    for source in (stored, every, every.astype(np.float32)):
        got = gather(source, rows)
        assert got.dtype == torch.float32
        assert np.array_equal(got.numpy(), np.asarray(source[rows], dtype=np.float32))


def test_pos_weights_and_devices() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    assert pos_weights(y).tolist() == [1.0, 3.0, 1.0]
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(InstrlabError, match="CUDA"):
            pick_device("cuda")


def test_ema_weights_are_validated_and_kept(data: tuple[np.memmap, np.ndarray]) -> None:
    _, plain = run(data, epochs=3)
    model, ema = run(data, epochs=3, ema_decay=0.9)
    # the same training steps, but validation (and the kept weights) see the average
    assert [h["train_loss"] for h in ema.history] == [h["train_loss"] for h in plain.history]
    assert [h["val_loss"] for h in ema.history] != [h["val_loss"] for h in plain.history]
    assert ema.best_val_macro_f1 > 0.5
    feats, labels = data
    probs = predict_proba(model, feats, np.arange(300, N))
    from instrlab.training.metrics import binarize, macro_f1

    assert macro_f1(labels[300:], binarize(probs, 0.5)) == pytest.approx(ema.best_val_macro_f1)
