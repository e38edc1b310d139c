"""File locks for tune processes started together on one machine (``n_workers``, or the
same command started several times): one creates MLflow's tables, one builds a dataset."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator

import mlflow

from instrlab.dataset import DatasetConfig
from instrlab.paths import cache_dir


class Flock:
    """An exclusive ``fcntl.flock`` on ``path`` (created if missing), taken and released by
    hand where a ``with`` block cannot span the locked work. The kernel drops the lock when
    its holder dies, so a killed process never leaves it behind; ``release`` is idempotent."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self._path = os.fspath(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:  # left by an interruption between acquire and release
            self.release()
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # releases the lock


@contextlib.contextmanager
def flock(path: os.PathLike[str] | str) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) while the block runs."""
    lock = Flock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def tracking_schema_lock() -> Iterator[None]:
    """Processes started together on one SQLite store create MLflow's tables one at a time."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = os.path.abspath(uri[len("sqlite:///"):])
    key = hashlib.sha256(db.encode()).hexdigest()[:16]
    with flock(os.path.join(tempfile.gettempdir(), f"instrlab-mlflow-{key}.lock")):
        yield


@contextlib.contextmanager
def dataset_lock(cfg: DatasetConfig) -> Iterator[None]:
    """One builder per dataset on this machine: workers started together wait for the first."""
    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    folder = cache_dir() / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    with flock(folder / f".tune-{key.hexdigest()[:16]}.lock"):
        yield
