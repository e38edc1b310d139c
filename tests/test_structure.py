"""The package's shape: small modules, and a command line that starts without heavy imports.

Layers and import cycles are checked by `lint-imports` (contracts in pyproject.toml),
which scripts/test runs before pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "instrlab"
MAX_LINES = 400
HEAVY = ("torch", "mlflow", "optuna", "librosa", "scipy", "sklearn", "matplotlib")


def test_no_module_passes_the_size_limit() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 30
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("argv", [[], ["main"], ["tune"], ["evaluate"], ["predict"],
                                  ["generate"], ["config"], ["list"]])
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
