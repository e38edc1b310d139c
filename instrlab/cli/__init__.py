"""The ``instrlab`` command line: one parser, an explicit list of sub-command modules.

Each module in :data:`COMMANDS` has ``add_parsers(sub)``; handlers import the heavy
parts (torch, mlflow, optuna) themselves, so ``instrlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from instrlab.cli import data, experiment, folds, predict, soundfonts, tune
from instrlab.config import ExperimentConfig
from instrlab.errors import InstrlabError

COMMANDS = (data, experiment, predict, soundfonts, tune, folds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instrlab",
        description="Synthesize labelled multi-instrument audio, train models that say which "
                    "instruments play, and track every experiment in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InstrlabError as exc:
        print(f"instrlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("instrlab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def resolve_config(argv: Sequence[str]) -> ExperimentConfig:
    """The configuration ``instrlab ARGV`` would run with, without running it."""
    args = build_parser().parse_args(list(argv))
    if not hasattr(args, "resolve"):
        raise InstrlabError(f"instrlab {argv[0]} takes no experiment configuration")
    return args.resolve(args)


def entry_point_argv(argv: Sequence[str]) -> list[str]:
    """An MLproject command line without the options whose parameter was left empty.

    MLproject parameters default to "" (not given), so that the dataclass defaults apply,
    as they do for ``instrlab`` itself.
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--") and "=" not in item and i + 1 < len(items) \
                and items[i + 1] == "":
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def run_entry_point(command: str, argv: Sequence[str]) -> int:
    """What ``experiments/*.py`` run: ``instrlab COMMAND`` with MLproject's arguments."""
    return main([command, *entry_point_argv(argv)])
