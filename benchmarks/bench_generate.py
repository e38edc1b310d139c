"""Benchmark dataset generation against the foundation targets.

Targets (issue 2): 8000 samples of ``logmel`` on this 2-core machine in at most 120 s of
wall time with a peak RSS of at most 1.5 GB. The dataset is built from scratch into a
temporary directory that is removed afterwards.

    python benchmarks/bench_generate.py                    # the target: 8000 samples
    python benchmarks/bench_generate.py --n-samples 1000   # quicker; also projects 8000
    python benchmarks/bench_generate.py --profile          # per-stage ms/sample only

Peak RSS: ``ru_maxrss`` of this process (RUSAGE_SELF) and of the largest finished worker
(RUSAGE_CHILDREN, which reports the largest child, not a sum). Workers run at the same
time, so the figure judged against the target is the conservative
``parent + workers x largest child``; ``parent + largest child`` is printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_SAMPLES = 8000
TARGET_SECONDS = 120.0
TARGET_RSS_BYTES = 1.5e9
LOAD_BEFORE = " ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-samples", type=int, default=TARGET_SAMPLES,
                   help=f"clips to build (default: {TARGET_SAMPLES}, the target)")
    p.add_argument("--features", default="logmel", help="feature extractor (default: logmel)")
    p.add_argument("--instruments", default="seed12", help="instrument set (default: seed12)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0 = all cores)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory to build in (default: a new temporary directory); "
                        "whatever the benchmark creates there is removed afterwards")
    p.add_argument("--profile", action="store_true",
                   help="instead of a build, time each stage in-process on --profile-samples")
    p.add_argument("--profile-samples", type=int, default=100,
                   help="samples for --profile (default: 100)")
    return p.parse_args(argv)


def max_rss_bytes(who: int) -> int:
    # Linux reports kilobytes, macOS bytes
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale


def proc_status(*keys: str) -> dict[str, str]:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = " ".join(value.split())
    return out


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def fmt_bytes(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def profile(args: argparse.Namespace) -> int:
    """Per-stage cost in this process: score, render stems, mix, features."""
    from instrlab.dataset import DatasetConfig
    from instrlab.dataset.render import SampleRenderer
    from instrlab.synth.mixing import mix_stems

    cfg = DatasetConfig(n_samples=max(args.profile_samples, 1), instruments=args.instruments,
                        features=args.features, seed=args.seed)
    t0 = time.perf_counter()
    renderer = SampleRenderer(cfg)
    setup = time.perf_counter() - t0
    n = cfg.n_samples
    totals = {"score": 0.0, "render stems": 0.0, "mix": 0.0, "features": 0.0}
    stems_total = 0
    for index in range(n):
        t = time.perf_counter()
        score = renderer.score(index)
        t1 = time.perf_counter()
        stems = [renderer.synth.render_stem(renderer.iset.instruments[i], score.notes_of(i),
                                            score.clip_seconds) for i in score.instruments]
        t2 = time.perf_counter()
        audio, _, _ = mix_stems(stems, cfg.mix)
        t3 = time.perf_counter()
        renderer.extractor(audio)
        t4 = time.perf_counter()
        totals["score"] += t1 - t
        totals["render stems"] += t2 - t1
        totals["mix"] += t3 - t2
        totals["features"] += t4 - t3
        stems_total += len(stems)
    per_sample = sum(totals.values()) / n
    print(f"profile: {n} samples of {args.instruments}/{args.features}, one process "
          f"(set-up {setup:.2f} s: soundfont, extractor; load average before: {LOAD_BEFORE})")
    for stage, total in totals.items():
        print(f"  {stage:<13} {1000 * total / n:7.2f} ms/sample  "
              f"({100 * total / (per_sample * n):4.1f} %)")
    print(f"  {'total':<13} {1000 * per_sample:7.2f} ms/sample  "
          f"({stems_total / n:.2f} stems/sample, "
          f"{1000 * totals['render stems'] / stems_total:.2f} ms/stem)")
    cores = os.cpu_count() or 1
    print(f"  -> {TARGET_SAMPLES} samples on {cores} cores: about "
          f"{per_sample * TARGET_SAMPLES / cores:.0f} s of rendering (target "
          f"<= {TARGET_SECONDS:.0f} s, before process start-up and writing)")
    return 0


def build(args: argparse.Namespace) -> int:
    from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset
    from instrlab.dataset.build import resolve_workers

    workers = resolve_workers(args.workers)
    cfg = DatasetConfig(n_samples=args.n_samples, instruments=args.instruments,
                        features=args.features, seed=args.seed)
    base = Path(tempfile.mkdtemp(prefix="instrlab-bench-", dir=args.out))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    out = base / "dataset"
    try:
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        path = generate_dataset(cfg, out=out, workers=workers, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        ds = open_dataset(path)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        shape = ds.features.shape
    finally:
        shutil.rmtree(base, ignore_errors=True)

    parent = max_rss_bytes(resource.RUSAGE_SELF)
    child = max_rss_bytes(resource.RUSAGE_CHILDREN)
    used_workers = workers if child else 1  # small builds stay in-process
    simple = parent + child
    bound = parent + (used_workers if child else 0) * child
    rate = args.n_samples / wall
    projected = wall * TARGET_SAMPLES / args.n_samples

    print(f"build: {args.n_samples} samples {args.instruments}/{args.features}, "
          f"workers={workers} ({os.cpu_count()} cores), features {shape} float16, "
          f"{fmt_bytes(size)} on disk")
    print(f"  wall             {wall:8.1f} s   ({rate:.1f} samples/s, "
          f"{1000 * wall / args.n_samples:.1f} ms/sample)")
    cores = min(workers, os.cpu_count() or 1)
    print(f"  CPU time         {cpu:8.1f} s   (parent + workers; {cpu / cores:.1f} s on {cores} "
          f"idle cores; load average before: {LOAD_BEFORE})")
    print(f"  peak RSS parent  {fmt_bytes(parent):>8}   "
          f"{proc_status('VmHWM', 'RssAnon', 'RssFile')}")
    print(f"  peak RSS child   {fmt_bytes(child):>8}   (largest worker)")
    print(f"  parent + child   {fmt_bytes(simple):>8}")
    print(f"  parent + {used_workers} x child {fmt_bytes(bound):>6}   "
          "(all workers at their peak at once: the figure judged)")
    scale = "" if args.n_samples == TARGET_SAMPLES else (
        f" (projected linearly from {args.n_samples} samples: {projected:.0f} s)")
    print(f"target: {TARGET_SAMPLES} samples in <= {TARGET_SECONDS:.0f} s -> "
          f"{verdict(projected <= TARGET_SECONDS)}{scale}")
    print(f"target: peak RSS <= {fmt_bytes(TARGET_RSS_BYTES)} -> "
          f"{verdict(bound <= TARGET_RSS_BYTES)} ({fmt_bytes(bound)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.n_samples < 1:
        print("bench_generate: error: --n-samples must be >= 1", file=sys.stderr)
        return 2
    return profile(args) if args.profile else build(args)


if __name__ == "__main__":
    sys.exit(main())
