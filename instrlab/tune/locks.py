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


@contextlib.contextmanager
def flock(path: os.PathLike[str] | str) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) while the block runs."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
