"""An exclusive claim of a dataset directory while it is built: ``NAME.lock`` beside it.

``fcntl.flock`` rather than the ``filelock`` package: the kernel drops a flock lock when
the process holding it dies, even by SIGKILL, so no stale-lock heuristics are needed, and
a blocking ``flock`` with one non-blocking try first gives the "waiting" note directly.
``filelock``'s Unix lock is the same system call behind a dependency this tool does not
otherwise need (instrlab runs on Linux only).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from instrlab.errors import InstrlabError


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: ``NAME.lock`` next to it."""
    target = Path(os.path.abspath(target))
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def claim(target: Path, on_wait: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` while the block runs; yields the lock file.

    When another process holds it, ``on_wait(lock file)`` is called once and this one
    blocks until that process releases it or dies. The holder deletes the lock file
    before releasing it; a process that then finds its lock on a deleted (or replaced)
    file opens the path again, so two processes never hold the claim at once. A lock
    file left by a killed process is harmless: nobody holds its lock.
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None and not waited:
                    on_wait(path)
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise InstrlabError(
                    f"cannot lock {path} ({exc.strerror}); put the dataset on a local "
                    "filesystem (--out or $INSTRLAB_CACHE)"
                ) from exc
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        held = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (held.st_ino,
                                                                       held.st_dev):
            break
        os.close(fd)  # the previous holder deleted this file: lock the new one
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock
