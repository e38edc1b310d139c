"""Rich console helpers shared by the command line and long-running steps."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

console = Console(stderr=True)


@dataclass
class _Mark:
    """Where a task was when it (re)started and when it was last printed."""

    start: float
    start_done: float
    printed_at: float
    decile: int = 0
    finished: bool = False


class PlainProgress(Progress):
    """Progress for logs and pipes (``mlflow run``, CI): whole plain lines, never a bar.

    A task prints a line with its counts, rate and ETA each time it passes another 10 %
    (at most one every ``min_gap`` seconds), after ``heartbeat`` seconds without one, and
    when it completes. Same ``add_task``/``update``/``advance``/``reset`` API as a bar.
    """

    min_gap = 2.0
    heartbeat = 30.0

    def __init__(self, out: Console) -> None:
        super().__init__(console=out, disable=True)
        self._out = out
        self._marks: dict[TaskID, _Mark] = {}

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0, visible: bool = True, **fields: Any) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._restart(task_id)
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def reset(self, task_id: TaskID, **kwargs: Any) -> None:
        super().reset(task_id, **kwargs)
        self._restart(task_id)

    def _restart(self, task_id: TaskID) -> None:
        now = time.monotonic()
        old = self._marks.get(task_id)
        self._marks[task_id] = _Mark(now, self._tasks[task_id].completed,
                                     old.printed_at if old else now)

    def _maybe_print(self, task_id: TaskID) -> None:
        task, mark = self._tasks[task_id], self._marks[task_id]
        if mark.finished or task.completed <= mark.start_done:
            return
        now = time.monotonic()
        total = task.total
        if total:
            decile = int(10 * min(task.completed, total) / total)
            if task.completed >= total:
                mark.finished = True
            elif not ((decile > mark.decile and now - mark.printed_at >= self.min_gap)
                      or now - mark.printed_at >= self.heartbeat):
                return
            mark.decile = decile
        elif now - mark.printed_at < self.heartbeat:
            return
        mark.printed_at = now
        self._out.print(self.line(task_id, now), markup=False, highlight=False,
                        soft_wrap=True)

    def line(self, task_id: TaskID, now: float | None = None) -> str:
        """``description: done/total (pct %), rate/s, elapsed h:mm:ss, ETA h:mm:ss, info``."""
        task, mark = self._tasks[task_id], self._marks[task_id]
        elapsed = (now or time.monotonic()) - mark.start
        rate = (task.completed - mark.start_done) / elapsed if elapsed > 0 else 0.0
        parts = [f"{task.description}: {_count(task.completed)}"]
        if task.total:
            parts[0] += f"/{_count(task.total)} ({100 * task.completed / task.total:.0f} %)"
        parts.append(f"{rate:.1f}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s each")
        parts.append(f"elapsed {_clock(elapsed)}")
        if task.total and rate > 0:
            parts.append(f"ETA {_clock(max(task.total - task.completed, 0) / rate)}")
        info = str(task.fields.get("info") or "")
        return ", ".join(parts + ([info] if info else []))


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@contextlib.contextmanager
def progress_bar(enabled: bool = True, info: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr; on a non-terminal (a log, ``mlflow run``) plain
    periodic lines instead (:class:`PlainProgress`); disabled: nothing drawn.

    ``info``: a last column showing each task's ``info`` field (e.g. the running loss).
    """
    if enabled and not (console.is_terminal or console.is_jupyter):
        with PlainProgress(console) as plain:
            yield plain
        return
    with rich_progress(console, info, disable=not enabled) as bar:
        yield bar


def rich_progress(target: Console, info: bool = False, disable: bool = False) -> Progress:
    """The terminal progress bar. Counts, percentage and times keep their width on a narrow
    terminal (``mlflow run`` may hand down 80 columns or fewer): the description is cut
    with an ellipsis and the bar shrinks instead."""
    extra = [TextColumn("{task.fields[info]}")] if info else []
    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(
            ratio=3, min_width=10, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=None, table_column=Column(ratio=2, min_width=4)),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra,
        console=target,
        disable=disable,
        transient=False,
        expand=True,
    )
