"""The package's shape: small modules, and a command line that starts without heavy imports.

Layers and import cycles are checked by `lint-imports` (contracts in pyproject.toml),
which scripts/test runs before pytest.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instrlab.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "instrlab"
README = ROOT / "README.md"
MAX_LINES = 400
HEAVY = ("torch", "mlflow", "optuna", "librosa", "scipy", "sklearn", "matplotlib")


def test_no_module_passes_the_size_limit() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 30
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}



def test_every_package_path_in_the_readme_exists() -> None:
    """``instrlab/x.py`` or ``instrlab/x/`` named anywhere in README.md (not cache paths)."""
    named = set(re.findall(r"(?<![\w/.~-])instrlab/[\w/]*\w(?:\.py\b|/)", README.read_text()))
    assert len(named) > 5
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def layout_modules(readme: str) -> set[str]:
    """The ``.py`` files that the tree under ``instrlab/`` in README's "Layout" names."""
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    found: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        depth = (len(line) - len(line.lstrip())) // 2
        if depth == 0:
            stack = [name] if name == "instrlab/" else []
        elif stack:
            stack = [*stack[:depth], name]
            if name.endswith(".py"):
                found.add("".join(stack))
    return found


def test_the_readme_layout_names_every_module() -> None:
    on_disk = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert layout_modules(README.read_text()) == on_disk


def command_paths(parser: argparse.ArgumentParser,
                  prefix: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """``prefix`` and every (nested) sub-command below it, as argv lists."""
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()  # aliases map to the same parser
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from command_paths(sub, (*prefix, name))


COMMAND_PATHS = list(command_paths(build_parser()))


def test_every_sub_command_is_covered() -> None:
    assert len(COMMAND_PATHS) > 10
    assert {"main", "train", "tune", "folds", "soundfonts"} <= {p[0] for p in COMMAND_PATHS if p}


@pytest.mark.parametrize("argv", COMMAND_PATHS, ids=lambda a: " ".join(a) or "instrlab")
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    """What keeps `--help` under a second (benchmarks/bench_cli_startup.py times it)."""
    code = ("import contextlib, io, json, sys\n"
            "from instrlab.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    build_parser().parse_args({[*argv, '--help']!r})\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
