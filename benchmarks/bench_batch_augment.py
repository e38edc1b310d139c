"""Cost of the batch augmentations per training batch, against the model's own step.

Times gathering a batch of float16 features as the training loop does
(:func:`instrlab.training.loop.gather`, beside numpy's own widening, which it replaced),
:func:`instrlab.training.batch_augment.augment_batch` with the default
``SpecAugmentConfig`` (``TrainConfig().spec_augment``), the default without its spectrum
shift, each of its parts alone, and
one training step of the default model, in one process on the same batch shape, so the
figures compare as ratios on a noisy machine.

    python benchmarks/bench_batch_augment.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from instrlab.features import get_extractor
from instrlab.models.factory import ModelConfig, build_model
from instrlab.training.batch_augment import augment_batch
from instrlab.training.config import SpecAugmentConfig, TrainConfig
from instrlab.training.loop import gather


def timed(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def variants(default: SpecAugmentConfig) -> dict[str, SpecAugmentConfig]:
    """The default, the default without its spectrum shift, and each part alone."""
    off = SpecAugmentConfig(eq_db=0.0, freq_masks=0, time_masks=0, mixup_prob=0.0, shift_bins=0)
    parts = {
        "eq": {"eq_db": default.eq_db, "eq_knots": default.eq_knots},
        "masks": {"freq_masks": default.freq_masks, "time_masks": default.time_masks},
        "mixup": {"mixup_prob": default.mixup_prob},
        "shift": {"shift_bins": default.shift_bins},
        "style mix": {"style_mix_prob": default.style_mix_prob or 0.5},
    }
    alone = {k: dataclasses.replace(off, **v) for k, v in parts.items()}
    return {"default": default, "default without shift": dataclasses.replace(default, shift_bins=0),
            **alone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (this machine: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(get_extractor("logmel").shape)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, *shape, generator=gen).mul(-80)
    y = (torch.rand(args.batch_size, 12, generator=gen) < 0.2).float()

    model = build_model(ModelConfig(), shape, 12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    base = timed(step, args.repeats)
    print(f"batch {args.batch_size} x {shape}, {args.threads} threads, median of {args.repeats}")
    print(f"{'training step (' + ModelConfig().name + ')':32s} {base * 1e3:8.1f} ms  1.00x")
    stored = np.random.default_rng(0).normal(-40, 15, (8 * args.batch_size, *shape)).astype(
        np.float16)  # a dataset's features.npy holds float16
    rows = np.sort(np.random.default_rng(1).choice(len(stored), args.batch_size, replace=False))
    for name, fn in {"gather (torch widens)": lambda: gather(stored, rows),
                     "gather (numpy widens)": lambda: torch.from_numpy(
                         np.asarray(stored[rows], dtype=np.float32))}.items():
        sec = timed(fn, args.repeats)
        print(f"{name:32s} {sec * 1e3:8.1f} ms  {sec / base:.2f}x of a step")
    for name, cfg in variants(TrainConfig().spec_augment).items():
        sec = timed(lambda cfg=cfg: augment_batch(x.clone(), y, cfg, gen), args.repeats)
        print(f"{'augment: ' + name:32s} {sec * 1e3:8.1f} ms  {sec / base:.2f}x of a step")


if __name__ == "__main__":
    main()
