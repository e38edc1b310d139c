"""Optuna storages (a journal file or a database URL) and opening a study in one.

A study made by instrlab records its search space and fixed settings; a study opened
again must match both, so that its trials stay comparable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError, first_line
from instrlab.models.factory import ModelConfig
from instrlab.training import TrainConfig
from instrlab.tune.keys import ATTR_OBJECTIVE, ATTR_SETUP, ATTR_SPACE, OBJECTIVE
from instrlab.tune.locks import Flock
from instrlab.tune.options import DEFAULT_STORAGE
from instrlab.tune.space import SearchSpace
from instrlab.tune.targets import TARGETS, UNTUNABLE_TRAIN


class JournalFlock(Flock):
    """The journal's write lock as ``fcntl.flock`` on ``JOURNAL.flock``.

    Optuna's own journal locks (a symlink or an ``O_EXCL`` file) outlive a process killed
    while it holds them: every other process then waits out their 30 s grace period
    before breaking the lock, so a SIGKILLed ``instrlab tune`` stalled its workers. The
    kernel drops a flock lock when its holder dies. Other programs that write the same
    journal (optuna-dashboard only reads it) must use this lock too. It has the two
    methods ``JournalFileBackend(lock_obj=...)`` calls (its base class is private to Optuna).
    """

    def __init__(self, journal: str) -> None:
        super().__init__(journal + ".flock")


@dataclass
class StorageInfo:
    """An opened Optuna storage and how to show it (passwords hidden)."""

    storage: optuna.storages.BaseStorage
    display: str
    kind: str  # "journal" or "rdb"
    spec: str  # what to pass to optuna-dashboard / another worker


class AdvisoryLock:
    """A PostgreSQL session advisory lock held on a connection of its own: one lock for the
    workers of every machine that share the database. The server drops it with the
    connection of a holder that dies."""

    def __init__(self, engine: Any, key: int) -> None:
        self._engine, self.key = engine, key
        self._conn: Any = None

    def acquire(self) -> bool:
        from sqlalchemy import text  # database URLs only

        if self._conn is not None:
            self.release()
        conn = self._engine.connect()
        try:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        except BaseException:
            conn.invalidate()
            raise
        self._conn = conn
        return True

    def release(self) -> None:
        from sqlalchemy import text

        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            conn.close()
        except BaseException:
            conn.invalidate()  # closing the session is what frees its lock then
            raise


def trial_budget_lock(info: StorageInfo, study_name: str) -> Flock | AdvisoryLock:
    """The lock under which a process counts a study's trials and starts one; without it two
    workers can both see ``n_trials - 1`` and both start a trial. On PostgreSQL it is an
    advisory lock (workers on every machine); otherwise a file lock, which covers the workers
    of one machine: on another database, each further machine may start one trial past
    ``n_trials`` (as with Optuna's own ``MaxTrialsCallback``)."""
    digest = hashlib.sha256(f"{info.display}\0{study_name}".encode()).digest()
    if info.kind == "rdb" and info.storage.engine.dialect.name == "postgresql":
        return AdvisoryLock(info.storage.engine, int.from_bytes(digest[:8], "big", signed=True))
    return Flock(os.path.join(tempfile.gettempdir(), f"instrlab-study-{digest.hex()[:16]}.lock"))


def open_storage(spec: str | None) -> StorageInfo:
    """A journal file for a path (default ``./optuna-journal.log``), RDB for a URL.

    A URL that cannot be reached or used is one :class:`InstrlabError` line.
    """
    spec = (spec or "").strip() or DEFAULT_STORAGE
    if "://" not in spec:
        return _open_journal(spec)
    # only database URLs need SQLAlchemy (optuna imports it on first use too)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(spec)
    except ArgumentError as exc:
        raise InstrlabError(f"--storage {spec!r} is not a SQLAlchemy URL ({exc})") from None
    if url.drivername == "postgresql" and not _has_module("psycopg") and _has_module("psycopg2"):
        url = url.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 defaults to psycopg 3
        spec = url.render_as_string(hide_password=False)
    display = url.render_as_string(hide_password=True)
    engine_kwargs: dict[str, Any] = {}
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        storage = _rdb_storage(spec, engine_kwargs)
    except (ImportError, ModuleNotFoundError, NoSuchModuleError) as exc:
        raise InstrlabError(f"optuna storage {display} needs a database driver that is not "
                            f"installed ({exc}); pip install it (psycopg2-binary for "
                            "PostgreSQL, pymysql for MySQL)") from None
    except Exception as exc:
        raise InstrlabError(f"optuna storage {display} cannot be reached "
                            f"({first_line(exc)}); start the database or fix --storage") from None
    return StorageInfo(storage, display, "rdb", spec)


def _rdb_storage(spec: str, engine_kwargs: dict[str, Any], attempts: int = 5
                 ) -> optuna.storages.RDBStorage:
    """RDBStorage, retried when workers starting together race to create Optuna's tables."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError  # database URLs only

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(spec, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=30, grace_period=120)
        except (IntegrityError, ProgrammingError, optuna.exceptions.StorageInternalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _open_journal(spec: str) -> StorageInfo:
    path = os.path.abspath(os.path.expanduser(spec))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFlock(path)))
    except OSError as exc:
        raise InstrlabError(f"optuna journal {path} cannot be opened ({first_line(exc)}); "
                            "give a writable file path or a database URL with --storage") from None
    except Exception as exc:
        raise InstrlabError(f"optuna journal {path} is not a journal ({first_line(exc)}); "
                            "give another --storage file") from None
    return StorageInfo(storage, path, "journal", path)


def open_study(storage: StorageInfo, name: str, space: SearchSpace, setup: dict[str, Any],
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study or load it; an existing one must maximize and match space and setup."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage.storage,
                                                                        include_best_trial=False)}
    summary = existing.get(name)
    if summary is not None and list(summary.directions) != [optuna.study.StudyDirection.MAXIMIZE]:
        dirs = ", ".join(d.name.lower() for d in summary.directions)
        raise InstrlabError(f"study {name!r} in {storage.display} exists with direction {dirs}; "
                            f"instrlab maximizes {OBJECTIVE}: pick another --study-name")
    study = optuna.create_study(storage=storage.storage, study_name=name, direction="maximize",
                                load_if_exists=True, sampler=sampler, pruner=pruner)
    if study.directions != [optuna.study.StudyDirection.MAXIMIZE]:  # created meanwhile
        raise InstrlabError(f"study {name!r} in {storage.display} does not maximize; pick "
                            "another --study-name")
    setup_json = _canonical(setup)
    attrs = study.user_attrs
    if ATTR_SPACE not in attrs:
        if study.get_trials(deepcopy=False):
            raise InstrlabError(f"study {name!r} in {storage.display} holds trials that instrlab "
                                "tune did not make; pick another --study-name")
        study.set_user_attr(ATTR_SPACE, _canonical(space.to_json()))
        study.set_user_attr(ATTR_SETUP, setup_json)
        study.set_user_attr(ATTR_OBJECTIVE, f"{OBJECTIVE} (best epoch)")
        return study
    old = _stored_space(attrs[ATTR_SPACE])
    if old != space:
        shown = old.text() if isinstance(old, SearchSpace) else old
        raise InstrlabError(f"study {name!r} exists with another search space ({shown}); give "
                            "the same --search-space to continue it, or another --study-name")
    diff = _differences(attrs.get(ATTR_SETUP, {}), setup_json)
    if diff:
        raise InstrlabError(f"study {name!r} exists with other fixed settings ({'; '.join(diff)});"
                            " use the same options to continue it, or another --study-name")
    return study


def _stored_space(stored: Any) -> SearchSpace | str:
    """The search space a study records, or its raw JSON if it cannot be read as one."""
    try:
        return SearchSpace.from_json(stored)
    except (KeyError, TypeError, ValueError, AttributeError):
        return json.dumps(stored, default=str)


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out[:4]
    if old != new:
        return [f"{prefix.rstrip('.')}: study {old!r}, now {new!r}"]
    return []


def study_setup(space: SearchSpace, data: DatasetConfig, model: ModelConfig,
                train: TrainConfig) -> dict[str, Any]:
    """What every trial shares; stored in the study so that a resumed study stays comparable."""
    tuned = {t: {p.name for p in space.by_target(t)} for t in TARGETS}
    data_dict = data.to_dict()
    data_dict["feature_params"] = {k: v for k, v in data.feature_params.items()
                                   if k not in tuned["data"]}
    return {
        "data": data_dict,
        "model": {"name": model.name,
                  "params": {k: v for k, v in model.params.items() if k not in tuned["model"]}},
        "train": {k: v for k, v in train.to_dict().items()
                  if k not in tuned["train"] | UNTUNABLE_TRAIN},
        "objective": OBJECTIVE,
    }


def default_study_name(data: DatasetConfig, model: ModelConfig, train: TrainConfig) -> str:
    """``model-features-instruments-nN-sSEED-epE``: one study per fixed setup by default."""
    return (f"{model.name}-{data.features}-{data.instruments}-n{data.n_samples}-s{data.seed}"
            f"-ep{train.epochs}")
