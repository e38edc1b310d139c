"""Training loop: mini-batches gathered from a (memory-mapped) feature array, best-F1 weights."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from instrlab.console import progress_bar
from instrlab.errors import InstrlabError
from instrlab.training.batch_augment import augment_batch
from instrlab.training.config import TrainConfig
from instrlab.training.metrics import binarize, macro_f1, tune_thresholds

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What :func:`fit` learned: per-epoch history, the best epoch and decision thresholds."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_macro_f1: float = 0.0
    train_samples_per_s: float = 0.0
    seconds: float = 0.0
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    min_labels: int = 0
    stopped_early: bool = False


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; explicit names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise InstrlabError(
            f"device {name!r} is not a torch device; use auto, cpu or cuda"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InstrlabError(f"device {name!r} asked for CUDA, which is not available; use cpu")
    return device


def pos_weights(labels: np.ndarray) -> np.ndarray:
    """Per-class negatives/positives (the seed's ``pos_weight``); 1.0 for classes never positive."""
    labels = np.asarray(labels)
    pos = labels.sum(axis=0).astype(np.float64)
    neg = labels.shape[0] - pos
    return np.where(pos > 0, neg / np.maximum(pos, 1.0), 1.0).astype(np.float32)


def gather(features: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of a (memory-mapped) array as a float32 tensor."""
    # torch widens float16 about 5x faster than numpy's astype (benchmarks/
    # bench_batch_augment.py), exactly alike: every float16 is a float32
    return torch.from_numpy(np.asarray(features[idx])).float()


def batches(
    idx: np.ndarray, batch_size: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Sorted index batches of a (shuffled when ``rng`` is given) index array.

    In training (``rng`` given) a final batch of a single sample is dropped: BatchNorm
    cannot train on it, and the shuffle puts a different sample there every epoch.
    """
    order = rng.permutation(idx) if rng is not None else np.asarray(idx)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        if rng is not None and len(chunk) < 2 and len(order) > 1:
            continue
        yield np.sort(chunk) if rng is not None else chunk


def _make_scheduler(
    cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    return None


def _autocast(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def _evaluate(
    model: nn.Module, features: np.ndarray, labels: np.ndarray, idx: np.ndarray,
    loss_fn: nn.Module, device: torch.device, batch_size: int,
) -> tuple[float, np.ndarray]:
    """Mean loss and sigmoid probabilities over ``idx`` (model in eval mode)."""
    model.eval()
    total, probs = 0.0, []
    for chunk in batches(idx, batch_size, None):
        x = gather(features, chunk).to(device, non_blocking=True)
        y = torch.from_numpy(labels[chunk].astype(np.float32)).to(device)
        with _autocast(device):
            logits = model(x)
        logits = logits.float()
        total += float(loss_fn(logits, y)) * len(chunk)
        probs.append(torch.sigmoid(logits).cpu().numpy())
    return total / max(1, len(idx)), np.concatenate(probs).astype(np.float32)


def fit(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    on_batch: Callable[[], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; return history and restore the best-validation-F1 weights.

    ``features`` (N, ...) float16 may be an ``np.memmap``: each batch is gathered by sorted
    fancy indexing, so only the batch is copied into memory. Epochs count from 1.
    ``on_epoch(epoch, metrics)`` runs after every epoch and ``on_batch()`` after every
    batch (a deferred Ctrl-C: :func:`instrlab.tune.loop.check_interrupt`); whatever they
    raise propagates.
    """
    train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise InstrlabError(
            f"fit needs >= 2 training and >= 1 validation samples, got {len(train_idx)} "
            f"and {len(val_idx)}; generate a larger dataset"
        )
    if labels.shape[0] != features.shape[0]:
        raise InstrlabError(
            f"features hold {features.shape[0]} samples but labels {labels.shape[0]}; "
            "regenerate the dataset"
        )
    cfg.check_classes(labels.shape[1])
    device = pick_device(cfg.device)
    old_threads = torch.get_num_threads()
    if device.type == "cpu" and cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _fit(model, features, labels, train_idx, val_idx, cfg, device, on_epoch, progress,
                    on_batch)
    finally:
        torch.set_num_threads(old_threads)


def _fit(
    model: nn.Module, features: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
    val_idx: np.ndarray, cfg: TrainConfig, device: torch.device,
    on_epoch: EpochCallback | None, progress: bool, on_batch: Callable[[], None] | None,
) -> TrainResult:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    pw = torch.from_numpy(pos_weights(labels[np.sort(train_idx)])).to(device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pw)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = sum(1 for _ in batches(train_idx, cfg.batch_size, np.random.default_rng(0)))
    sched = _make_scheduler(cfg, opt, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay),
        use_buffers=True) if cfg.ema_decay else None)
    judged = ema.module if ema is not None else model  # the weights validated and kept
    # a model that averages over shifted inputs (ShiftAveraged) is validated each epoch by
    # one pass, its own network: averaging every epoch would cost one pass per shift
    one_pass = getattr(judged, "single_pass", lambda: judged)()
    eval_bs = max(cfg.batch_size, 256)

    result = TrainResult(min_labels=cfg.min_labels)
    best_key: tuple[float, float] = (-1.0, math.inf)
    best_state: dict[str, torch.Tensor] | None = None
    best_val_probs: np.ndarray | None = None
    train_seconds, train_samples = 0.0, 0
    since_best = 0
    start = time.perf_counter()
    with progress_bar(progress, info=True) as bar:
        ep_task = bar.add_task("epochs", total=cfg.epochs, info="")
        b_task = bar.add_task("batches", total=steps, info="")
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = float(opt.param_groups[0]["lr"])
            model.train()
            loss_sum, seen = 0.0, 0
            bar.reset(b_task, total=steps)
            for chunk in batches(train_idx, cfg.batch_size, rng):
                x = gather(features, chunk).to(device, non_blocking=True)
                y = torch.from_numpy(labels[chunk].astype(np.float32)).to(device)
                x, y = augment_batch(x, y, cfg.spec_augment, aug_gen)
                opt.zero_grad(set_to_none=True)
                with _autocast(device):
                    logits = model(x)
                loss = loss_fn(logits.float(), y)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if sched is not None:
                    sched.step()
                if ema is not None:
                    ema.update_parameters(model)
                loss_sum += loss.item() * len(chunk)
                seen += len(chunk)
                bar.update(b_task, advance=1, info=f"loss {loss_sum / seen:.4f}")
                if on_batch is not None:
                    on_batch()
            train_time = time.perf_counter() - t0
            train_seconds += train_time
            train_samples += seen
            train_loss = loss_sum / max(1, seen)
            if not math.isfinite(train_loss):
                raise InstrlabError(
                    f"training diverged: train loss is {train_loss} in epoch {epoch}; "
                    "lower the learning rate"
                )
            val_loss, val_probs = _evaluate(
                one_pass, features, labels, val_idx, loss_fn, device, eval_bs
            )
            f1 = macro_f1(labels[val_idx], binarize(val_probs, cfg.threshold, cfg.min_labels))
            metrics = {
                "epoch": float(epoch), "train_loss": train_loss, "val_loss": val_loss,
                "val_macro_f1": f1, "lr": lr, "seconds": time.perf_counter() - t0,
            }
            result.history.append(metrics)
            if f1 > best_key[0]:
                since_best = 0
            else:
                since_best += 1
            if (f1, -val_loss) > (best_key[0], -best_key[1]):  # ties on F1 go to lower loss
                best_key = (f1, val_loss)
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                            judged.state_dict().items()})
                best_val_probs = val_probs
                result.best_epoch, result.best_val_macro_f1 = epoch, f1
            bar.update(ep_task, advance=1, info=f"val F1 {f1:.4f} (best {best_key[0]:.4f})")
            if on_epoch is not None:
                on_epoch(epoch, dict(metrics))
            if cfg.early_stopping_patience and since_best >= cfg.early_stopping_patience:
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    n_classes = labels.shape[1]
    if cfg.tune_thresholds and best_val_probs is not None and one_pass is not judged:
        # thresholds fit the predictions the model will make: averaged over its shifts
        _, best_val_probs = _evaluate(model, features, labels, val_idx, loss_fn, device, eval_bs)
    if cfg.tune_thresholds and best_val_probs is not None:
        result.thresholds = tune_thresholds(labels[val_idx], best_val_probs)
    else:
        result.thresholds = np.full(n_classes, cfg.threshold, dtype=np.float64)
    result.seconds = time.perf_counter() - start
    result.train_samples_per_s = train_samples / train_seconds if train_seconds > 0 else 0.0
    return result


@torch.no_grad()
def predict_proba(
    model: nn.Module, features: np.ndarray, idx: np.ndarray, batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Sigmoid probabilities (len(idx), C) float32 for rows ``idx``, in the order given."""
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    out = []
    try:
        for chunk in batches(np.asarray(idx), batch_size, None):
            with _autocast(device):
                logits = model(gather(features, chunk).to(device))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        n_out = getattr(model, "n_classes", 0)
        return np.zeros((0, n_out), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)
