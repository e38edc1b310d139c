"""Start-up time of ``instrlab --help`` and of every sub-command's ``--help``.

Each command runs as a whole new process (interpreter start, imports, parser) ``--repeat``
times; the figures are min / median / max wall seconds. Target: every one under 1 s.

    python benchmarks/bench_cli_startup.py
    python benchmarks/bench_cli_startup.py --repeat 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from instrlab.cli import build_parser

TARGET_S = 1.0


def subcommands() -> list[str]:
    """Every sub-command of the parser, in its order."""
    sub = build_parser()._subparsers._group_actions[0]  # argparse keeps them only here
    return list(sub.choices)


def time_once(argv: Sequence[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", *argv],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"instrlab {' '.join(argv)} failed: {proc.stderr.strip()}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per command (default: 5)")
    args = p.parse_args(argv)
    commands = [["--help"], *([c, "--help"] for c in subcommands())]
    print(f"{'command':<28} {'min':>7} {'median':>7} {'max':>7}  (s, {args.repeat} runs)")
    worst = 0.0
    for cmd in commands:
        times = [time_once(cmd) for _ in range(args.repeat)]
        worst = max(worst, statistics.median(times))
        print(f"instrlab {' '.join(cmd):<19} {min(times):7.3f} {statistics.median(times):7.3f} "
              f"{max(times):7.3f}")
    verdict = "within" if worst < TARGET_S else "OVER"
    print(f"slowest median {worst:.3f} s: {verdict} the {TARGET_S:g} s target")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
