"""Rich console helpers shared by the command line and long-running steps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(enabled: bool = True, info: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr (disabled: a bar that draws nothing).

    ``info``: a last column showing each task's ``info`` field (e.g. the running loss).
    """
    extra = [TextColumn("{task.fields[info]}")] if info else []
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra,
        console=console,
        disable=not enabled,
        transient=False,
    )
    with bar:
        yield bar
