"""Training throughput (forward + backward + Adam step) of every registered model.

Each model runs at the shape of its features: the factory's ``default_features`` attribute
names a registered feature extractor (``logmel`` when absent), whose ``shape`` is used.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import nn

from instrlab.features import get_extractor
from instrlab.registry import models
from instrlab.training import pick_device


def feature_shape(model_name: str, overrides: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Input shape for ``model_name``: an override, else its default features' shape."""
    if model_name in overrides:
        return overrides[model_name]
    feature = getattr(models.get(model_name), "default_features", "logmel")
    return tuple(get_extractor(feature).shape)


def throughput(
    model: nn.Module, shape: tuple[int, ...], n_classes: int, batch_size: int, steps: int,
    warmup: int, device: torch.device,
) -> float:
    """Training samples per second over ``steps`` timed steps after ``warmup`` steps."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, *shape, generator=gen).mul(-80).to(device)
    y = (torch.rand(batch_size, n_classes, generator=gen) < 0.2).float().to(device)
    amp = device.type == "cuda"
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if amp:
                torch.cuda.synchronize()
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        opt.step()
    if amp:
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - start)


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, _, dims = text.partition("=")
    return name, tuple(int(d) for d in dims.lower().split("x"))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="model names (default: every registered one)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (0 = torch default)")
    ap.add_argument("--classes", type=int, default=12)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--shape", action="append", default=[], metavar="MODEL=AxBxC",
                    help="input shape for a model, e.g. seed_cnn=3x400x400 (repeatable)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    overrides = dict(parse_shape(s) for s in args.shape)
    names = args.models or models.names()
    print(f"device {device}, threads {torch.get_num_threads()}, batch {args.batch_size}")
    print(f"{'model':<16} {'input':<14} {'params':>10} {'samples/s':>10}")
    for name in names:
        shape = feature_shape(name, overrides)
        torch.manual_seed(0)
        model = models.create(name, input_shape=shape, n_classes=args.classes)
        n_params = sum(p.numel() for p in model.parameters())
        rate = throughput(model, shape, args.classes, args.batch_size, args.steps,
                          args.warmup, device)
        dims = "x".join(map(str, shape))
        print(f"{name:<16} {dims:<14} {n_params:>10,} {rate:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
