"""Progress output: whole plain lines on a non-terminal (a log file, a pipe), and a terminal
bar whose figures stay whole on a narrow terminal (``mlflow run``)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from instrlab import console as console_mod
from instrlab.console import PlainProgress, progress_bar, rich_progress

LINE = re.compile(r"^(?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) \((?P<pct>\d+) %\), "
                  r"(?P<rate>[\d.]+/s|[\d.e+-]+ s each), elapsed \d+:\d\d:\d\d, "
                  r"ETA \d+:\d\d:\d\d(?:, (?P<info>.+))?$")


def test_generate_in_a_pipe_prints_whole_lines_with_counts_rate_and_eta(tmp_path: Path) -> None:
    env = {**os.environ, "INSTRLAB_CACHE": str(tmp_path / "cache"), "COLUMNS": "60"}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_COMPATIBLE", None)
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "generate", "--n-samples",
                           "64", "--seed", "11", "--workers", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    progress = [x for x in proc.stderr.splitlines() if x.startswith("generate ")]
    assert progress, proc.stderr
    lines = [LINE.match(x) for x in progress]
    assert all(lines), f"cut or not plain: {progress}"
    assert all("…" not in x for x in progress)
    last = lines[-1]
    assert last["desc"].startswith("generate seed12-logmel-n64-")
    assert (last["done"], last["total"], last["pct"]) == ("64", "64", "100")
    assert len(last.group(0)) > 60, "longer than COLUMNS, and whole"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_tenth_or_heartbeat_and_at_completion(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(console_mod.time, "monotonic", clock)
    out = io.StringIO()
    bar = PlainProgress(Console(file=out, width=40))
    task = bar.add_task("batches with a description longer than the console", total=100,
                        info="")
    for i in range(100):
        clock.now += 1.0  # 1 step/s: every tenth is 10 s after the last line
        bar.update(task, advance=1, info=f"loss {1 / (i + 1):.3f}")
    lines = out.getvalue().splitlines()
    assert [LINE.match(x)["done"] for x in lines] == [str(10 * k) for k in range(1, 11)]
    first = LINE.match(lines[0])
    assert first["rate"] == "1.0/s" and lines[0].endswith("ETA 0:01:30, loss 0.100")
    assert all("…" not in x for x in lines)

    out.truncate(0), out.seek(0)
    bar.reset(task, total=1000)
    for _ in range(60):  # one step every 2 s: the 30 s heartbeat comes before a tenth
        clock.now += 2.0
        bar.advance(task)
    lines = out.getvalue().splitlines()
    assert [LINE.match(x)["done"] for x in lines] == ["15", "30", "45", "60"]
    assert LINE.match(lines[0])["rate"] == "2 s each"

    out.truncate(0), out.seek(0)
    bar.reset(task, total=50)
    for _ in range(50):  # fast: tenths come quicker than min_gap; only the end is printed
        clock.now += 0.01
        bar.advance(task)
    assert [LINE.match(x)["done"] for x in out.getvalue().splitlines()] == ["50"]


def test_progress_bar_is_plain_off_a_terminal_and_silent_when_disabled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_mod, "console", Console(file=io.StringIO()))
    with progress_bar(True, info=True) as bar:
        assert isinstance(bar, PlainProgress)
    with progress_bar(False) as bar:
        assert not isinstance(bar, PlainProgress)
        bar.advance(bar.add_task("x", total=1))


@pytest.mark.parametrize("width", [60, 80, 160])
def test_terminal_bar_keeps_counts_and_times_whole_on_a_narrow_terminal(width: int) -> None:
    out = io.StringIO()
    target = Console(file=out, width=width, force_terminal=True, color_system=None)
    with rich_progress(target, info=True) as bar:
        bar.add_task("generate seed12-logmel-n8000-00179be626c955fa", total=8000,
                     completed=5000, info="loss 0.1234")
        bar.refresh()
    line = [s for s in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue()).split("\r")
            if s.strip()][-1].rstrip("\n")
    assert "5000/8000" in line and "62%" in line and "loss 0.1234" in line, line
    assert len(line) <= width, line
    if width < 80:
        assert line.startswith("generate ") and "…" in line, line  # cut, not dropped
