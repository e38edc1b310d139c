"""Optuna studies over instrlab's training, every trial a nested MLflow run.

One ``instrlab tune`` invocation is one parent MLflow run. Each trial opens its own
``mlflow.start_run(nested=True)`` under it (params, per-epoch curves, final metrics, its
state as a tag); the objective is the best epoch's validation macro F1 and the test split
is never touched by a trial. At the end the parent logs the best params and value, the
trials table and Optuna's plots, and the best trial is retrained once in a nested
``best`` run that is evaluated on the test split and logs the model.

Storage: a journal file (``optuna-journal.log`` in the working directory by default) or
any SQLAlchemy URL (PostgreSQL, MySQL) for workers on several machines. ``n_trials`` is
the size of the *study*, not of one invocation: a worker starts a new trial only while
the study holds fewer than ``n_trials`` trials that count (complete, pruned, failed with
an error, or running). Trials cut short by an interruption (Ctrl-C, a killed worker) do
not count, so running the same command again continues the study where it stopped.
Parallelism is worker processes (``n_workers`` or the same command started several
times), never threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from instrlab.console import console
from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError
from instrlab.pipeline import ModelConfig
from instrlab.training import TrainConfig

DEFAULT_STORAGE = "optuna-journal.log"
DEFAULT_SPACE = ("lr=loguniform:1e-4:1e-2", "batch_size=categorical:16,32,64,128,256")
KINDS = ("loguniform", "uniform", "int", "logint", "categorical")
TARGETS = ("train", "model", "data")
UNTUNABLE_TRAIN = {"device", "num_threads"}
OBJECTIVE = "val_macro_f1"
PRUNERS = ("none", "median", "halving")
SAMPLERS = ("tpe", "random")

ATTR_SPACE = "instrlab.search_space"
ATTR_SETUP = "instrlab.setup"
ATTR_OBJECTIVE = "instrlab.objective"
ATTR_HOST, ATTR_PID, ATTR_WORKER = "instrlab.host", "instrlab.pid", "instrlab.worker"
ATTR_RUN = "instrlab.mlflow_run_id"
ATTR_FAIL = "instrlab.fail_reason"
ATTR_INTERRUPTED = "instrlab.interrupted"
ATTR_PRUNED_AT = "instrlab.pruned_at_epoch"
ATTR_BEST_EPOCH = "instrlab.best_epoch"

TAG_STUDY = "instrlab.study"
TAG_STORAGE = "instrlab.storage"
TAG_TRIAL = "instrlab.trial_number"
TAG_STATE = "instrlab.trial_state"
TAG_ROLE = "instrlab.tune_role"  # tune (parent), trial, or best

MAX_FAILS_IN_A_ROW = 3


# ---------------------------------------------------------------- search space


@dataclass(frozen=True)
class ParamSpec:
    """One tuned parameter: where it goes (``train``/``model``/``data``) and its range."""

    name: str
    target: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind in ("int", "logint"):
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=self.step or 1, log=self.kind == "logint")
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   log=self.kind == "loguniform")

    def edge_values(self) -> list[Any]:
        """The values that bound the range: checked against the configs before any work."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def text(self) -> str:
        """The spec as the user writes it (``lr=loguniform:0.0001:0.01``)."""
        if self.kind == "categorical":
            args = ",".join(_fmt_value(c) for c in self.choices)
        else:
            args = f"{_fmt_value(self.low)}:{_fmt_value(self.high)}"
            if self.step:
                args += f":{self.step}"
        return f"{self.name}={self.kind}:{args}"

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "target": self.target, "kind": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.step:
                out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The tuned parameters, in order; parsed and checked by :meth:`parse`."""

    params: tuple[ParamSpec, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def by_target(self, target: str) -> list[ParamSpec]:
        return [p for p in self.params if p.target == target]

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.params]

    def text(self) -> str:
        return " ".join(p.text() for p in self.params)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.params}

    def apply(self, values: dict[str, Any], data: DatasetConfig, model: ModelConfig,
              train: TrainConfig) -> tuple[DatasetConfig, ModelConfig, TrainConfig]:
        """The configs of one trial: the fixed ones with ``values`` put in their places."""
        part = {t: {p.name: values[p.name] for p in self.by_target(t) if p.name in values}
                for t in TARGETS}
        if part["data"]:
            data = dataclasses.replace(data, feature_params={**data.feature_params,
                                                             **part["data"]})
        model = ModelConfig(model.name, {**model.params, **part["model"]})
        train = dataclasses.replace(train, **part["train"])
        return data, model, train

    def data_variants(self, data: DatasetConfig) -> list[DatasetConfig]:
        """Every dataset the trials can ask for (one per combination of data choices)."""
        import itertools

        specs = self.by_target("data")
        out = []
        for combo in itertools.product(*[p.choices for p in specs]):
            fp = {**data.feature_params, **{p.name: v for p, v in zip(specs, combo)}}
            out.append(dataclasses.replace(data, feature_params=fp))
        return out

    @classmethod
    def parse(cls, items: Sequence[str], data: DatasetConfig, model: ModelConfig,
              train: TrainConfig, defaults: Sequence[str] = DEFAULT_SPACE) -> SearchSpace:
        """Defaults, then ``items`` (``NAME=KIND:ARGS``; ``NAME=off`` drops a parameter).

        Every name must be a training setting, a parameter of the model's factory or (as a
        categorical) a parameter of the feature extractor; every range must be non-empty
        and every bound a value the configs accept. Errors are :class:`InstrlabError`.
        """
        specs: dict[str, ParamSpec] = {}
        for item in [*defaults, *_split_items(items)]:
            name, sep, rest = item.partition("=")
            name, rest = name.strip(), rest.strip()
            if not sep or not name or not rest:
                raise InstrlabError(
                    f"--search-space {item!r} must look like NAME=KIND:ARGS, e.g. "
                    "lr=loguniform:1e-4:1e-2 or batch_size=categorical:16,32,64"
                )
            target, bare = _resolve_name(name, item, data, model, train)
            if rest.lower() == "off":
                specs.pop(bare, None)
                continue
            spec = _parse_range(bare, target, rest, item)
            _check_kind(spec, item, data, model, train)
            specs[bare] = spec
        if not specs:
            raise InstrlabError("the search space is empty: tune at least one parameter")
        space = cls(tuple(specs.values()))
        space.check_values(data, model, train)
        return space

    def check_values(self, data: DatasetConfig, model: ModelConfig, train: TrainConfig) -> None:
        """Build the configs (and the model) at every bound: bad values fail before any work."""
        from instrlab.features import get_extractor
        from instrlab.instruments import get_instrument_set
        from instrlab.pipeline import build_model

        for p in self.by_target("train"):
            for v in p.edge_values():
                try:
                    dataclasses.replace(train, **{p.name: v})
                except InstrlabError as exc:
                    raise InstrlabError(f"--search-space {p.text()}: {exc}") from None
        shapes = []
        for variant in self.data_variants(data):
            try:
                ex = get_extractor(variant.features, sample_rate=variant.sample_rate,
                                   clip_seconds=variant.score.clip_seconds,
                                   **variant.feature_params)
            except InstrlabError as exc:
                bad = [p.text() for p in self.by_target("data")]
                raise InstrlabError(f"--search-space {' '.join(bad)}: {exc}") from None
            shapes.append(tuple(ex.shape))
        n_classes = len(get_instrument_set(data.instruments).names)
        for p in self.by_target("model"):
            for v in p.edge_values():
                cfg = ModelConfig(model.name, {**model.params, p.name: v})
                for shape in dict.fromkeys(shapes):
                    try:
                        build_model(cfg, shape, n_classes)
                    except (InstrlabError, ValueError, TypeError, RuntimeError) as exc:
                        raise InstrlabError(f"--search-space {p.text()}: {exc}") from None


def _split_items(items: Sequence[str]) -> list[str]:
    """Items may hold several specs separated by spaces or ';' (as MLproject passes them)."""
    out: list[str] = []
    for item in items or []:
        out += [s for s in item.replace(";", " ").split() if s]
    return out


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InstrlabError(f"--search-space {item!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InstrlabError(f"--search-space {item!r}: {text!r} is not a finite number")
    return value


def _choice(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parse_range(name: str, target: str, rest: str, item: str) -> ParamSpec:
    kind, _, args = rest.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise InstrlabError(
            f"--search-space {item!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)} "
            "(or NAME=off to drop a default parameter)"
        )
    if kind == "categorical":
        tokens = [t.strip() for t in args.split(",")]
        if not args.strip() or any(not t for t in tokens):
            raise InstrlabError(f"--search-space {item!r}: empty choice; list the values as "
                                "categorical:A,B,C")
        choices = tuple(_choice(t) for t in tokens)
        if len(set(map(repr, choices))) != len(choices):
            raise InstrlabError(f"--search-space {item!r}: a value is listed twice")
        return ParamSpec(name, target, kind, choices=choices)
    parts = args.split(":")
    need = "LOW:HIGH[:STEP]" if kind == "int" else "LOW:HIGH"
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        raise InstrlabError(f"--search-space {item!r}: {kind} takes {need}")
    low, high = (_number(p, item) for p in parts[:2])
    step = None
    if kind in ("int", "logint"):
        for v in (low, high):
            if not float(v).is_integer():
                raise InstrlabError(f"--search-space {item!r}: {kind} bounds must be whole "
                                    "numbers")
        low, high = int(low), int(high)
        if len(parts) == 3:
            step = int(_number(parts[2], item))
            if step < 1 or step != _number(parts[2], item):
                raise InstrlabError(f"--search-space {item!r}: STEP must be a whole number "
                                    ">= 1")
    if low == high:
        raise InstrlabError(f"--search-space {item!r}: empty range ({need} with LOW == HIGH);"
                            " give LOW < HIGH, or fix the value with the ordinary option")
    if low > high:
        raise InstrlabError(f"--search-space {item!r}: inverted range (LOW {low:g} > HIGH "
                            f"{high:g}); write it as {name}={kind}:{high:g}:{low:g}")
    if kind in ("loguniform", "logint") and low <= 0:
        raise InstrlabError(f"--search-space {item!r}: a log range needs LOW > 0")
    return ParamSpec(name, target, kind, low=low, high=high, step=step)


def _train_types(train: TrainConfig) -> dict[str, type]:
    return {f.name: type(getattr(train, f.name)) for f in dataclasses.fields(train)
            if f.name not in UNTUNABLE_TRAIN}


def _model_params(model: ModelConfig) -> tuple[dict[str, type | None], bool]:
    """Keyword parameters of the model factory with their default's type; any ``**kwargs``."""
    import inspect

    from instrlab.registry import models

    sig = inspect.signature(models.get(model.name))
    out: dict[str, type | None] = {}
    var_kw = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL and p.name not in ("input_shape", "n_classes"):
            default = p.default
            out[p.name] = None if default in (p.empty, None) else type(default)
    return out, var_kw


def _is_feature_param(name: str, data: DatasetConfig) -> bool:
    from instrlab.features import get_extractor

    try:
        get_extractor(data.features, sample_rate=data.sample_rate,
                      clip_seconds=data.score.clip_seconds,
                      **{**data.feature_params, name: _probe_value(name, data)})
    except TypeError:
        return False
    except Exception:  # a bad value still means the name is known
        return True
    return True


def _probe_value(name: str, data: DatasetConfig) -> Any:
    return data.feature_params.get(name, 128)


def _resolve_name(name: str, item: str, data: DatasetConfig, model: ModelConfig,
                  train: TrainConfig) -> tuple[str, str]:
    """``(target, bare name)`` of a search-space name (``lr``, ``model.dropout``, ...)."""
    prefix, dot, bare = name.partition(".")
    train_names = _train_types(train)
    model_names, model_any = _model_params(model)
    if dot:
        if prefix not in TARGETS:
            raise InstrlabError(f"--search-space {item!r}: prefix {prefix!r} is unknown; use "
                                "train., model. or data.")
        ok = {"train": lambda: bare in train_names,
              "model": lambda: bare in model_names or model_any,
              "data": lambda: _is_feature_param(bare, data)}[prefix]()
        if not ok:
            raise InstrlabError(_unknown_message(bare, item, model, data, train_names,
                                                 model_names))
        return prefix, bare
    found = [t for t, names in (("train", train_names), ("model", model_names))
             if name in names]
    if not found and name in (f.name for f in dataclasses.fields(train)):
        raise InstrlabError(f"--search-space {item!r}: {name} is not tunable (it chooses "
                            "where and how fast training runs, not what it learns)")
    if not found and _is_feature_param(name, data):
        found = ["data"]
    if not found and model_any:
        found = ["model"]
    if not found:
        raise InstrlabError(_unknown_message(name, item, model, data, train_names, model_names))
    if len(found) > 1:
        raise InstrlabError(f"--search-space {item!r}: {name} is both a training setting and a "
                            f"parameter of model {model.name}; write train.{name} or "
                            f"model.{name}")
    return found[0], name


def _unknown_message(name: str, item: str, model: ModelConfig, data: DatasetConfig,
                     train_names: dict[str, type], model_names: dict[str, Any]) -> str:
    return (f"--search-space {item!r}: unknown parameter {name!r}; tunable are training "
            f"settings ({', '.join(train_names)}), parameters of model {model.name} "
            f"({', '.join(model_names) or 'none'}) and, as categorical, parameters of "
            f"features {data.features} (e.g. n_mels)")


def _check_kind(spec: ParamSpec, item: str, data: DatasetConfig, model: ModelConfig,
                train: TrainConfig) -> None:
    """The kind and values must suit the parameter's type (ints stay ints, ...)."""
    if spec.target == "data" and spec.kind != "categorical":
        raise InstrlabError(
            f"--search-space {item!r}: feature parameters change the dataset, which is built "
            f"once before the trials; list the values: {spec.name}=categorical:A,B"
        )
    if spec.target == "train":
        want: type | None = _train_types(train)[spec.name]
    elif spec.target == "model":
        want = _model_params(model)[0].get(spec.name)
    else:
        want = None
    if want is None:
        return
    values = spec.edge_values()
    if want is bool:
        ok = spec.kind == "categorical" and all(isinstance(v, bool) for v in values)
        hint = "categorical:true,false"
    elif want is int:
        ok = spec.kind in ("int", "logint") or (
            spec.kind == "categorical" and all(type(v) is int for v in values))
        hint = "int:LOW:HIGH, logint:LOW:HIGH or categorical of whole numbers"
    elif want is float:
        ok = spec.kind != "categorical" or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        hint = "uniform, loguniform or categorical of numbers"
    elif want is str:
        ok = spec.kind == "categorical" and all(isinstance(v, str) for v in values)
        hint = "categorical:A,B"
    else:
        return
    if not ok:
        raise InstrlabError(f"--search-space {item!r}: {spec.name} takes {want.__name__} "
                            f"values; use {hint}")


# ---------------------------------------------------------------- storage and study


@dataclass
class StorageInfo:
    """An opened Optuna storage and how to show it (passwords hidden)."""

    storage: optuna.storages.BaseStorage
    display: str
    kind: str  # "journal" or "rdb"
    spec: str  # what to pass to optuna-dashboard / another worker


def open_storage(spec: str | None) -> StorageInfo:
    """A journal file for a path (default ``./optuna-journal.log``), RDB for a URL.

    A URL that cannot be reached or used is one :class:`InstrlabError` line.
    """
    spec = (spec or "").strip() or DEFAULT_STORAGE
    if "://" not in spec:
        return _open_journal(spec)
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
                            f"({_first_line(exc)}); start the database or fix --storage") from None
    return StorageInfo(storage, display, "rdb", spec)


def _rdb_storage(spec: str, engine_kwargs: dict[str, Any], attempts: int = 5
                 ) -> optuna.storages.RDBStorage:
    """RDBStorage, retried when workers starting together race to create Optuna's tables."""
    import random

    from sqlalchemy.exc import IntegrityError, ProgrammingError

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
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _open_journal(spec: str) -> StorageInfo:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = os.path.abspath(os.path.expanduser(spec))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        storage = JournalStorage(JournalFileBackend(path))
    except OSError as exc:
        raise InstrlabError(f"optuna journal {path} cannot be opened ({_first_line(exc)}); "
                            "give a writable file path or a database URL with --storage") from None
    except Exception as exc:
        raise InstrlabError(f"optuna journal {path} is not a journal ({_first_line(exc)}); "
                            "give another --storage file") from None
    return StorageInfo(storage, path, "journal", path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


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
    space_json = _canonical(space.to_json())
    setup_json = _canonical(setup)
    attrs = study.user_attrs
    if ATTR_SPACE not in attrs:
        if study.get_trials(deepcopy=False):
            raise InstrlabError(f"study {name!r} in {storage.display} holds trials that instrlab "
                                "tune did not make; pick another --study-name")
        study.set_user_attr(ATTR_SPACE, space_json)
        study.set_user_attr(ATTR_SETUP, setup_json)
        study.set_user_attr(ATTR_OBJECTIVE, f"{OBJECTIVE} (best epoch)")
        return study
    if attrs[ATTR_SPACE] != space_json:
        old = " ".join(ParamSpec(**{k: tuple(v) if k == "choices" else v
                                    for k, v in p.items()}).text() for p in attrs[ATTR_SPACE])
        raise InstrlabError(f"study {name!r} exists with another search space ({old}); give the "
                            "same --search-space to continue it, or another --study-name")
    diff = _differences(attrs.get(ATTR_SETUP, {}), setup_json)
    if diff:
        raise InstrlabError(f"study {name!r} exists with other fixed settings ({'; '.join(diff)});"
                            " use the same options to continue it, or another --study-name")
    return study


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
    return (f"{model.name}-{data.features}-{data.instruments}-n{data.n_samples}-s{data.seed}"
            f"-ep{train.epochs}")


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded with ``seed + trial.number``.

    Trial numbers are unique in a study, so workers that share a seed (and a resumed study
    whose sampler starts again) never draw the same parameters twice, and a given trial
    number always draws the same random start-up parameters.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            sampler = self._by_trial[trial.number] = self._make(self._seed + trial.number)
        return sampler

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: Any) -> Any:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:
        pass


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return TrialSeededSampler(lambda s: optuna.samplers.RandomSampler(seed=s), seed)
    if name == "tpe":
        return TrialSeededSampler(lambda s: optuna.samplers.TPESampler(seed=s), seed)
    raise InstrlabError(f"--sampler {name!r} is unknown; use one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, startup_trials: int = 5, warmup_epochs: int = 1
                ) -> optuna.pruners.BasePruner:
    """``median`` (MedianPruner), ``halving`` (successive halving) or ``none``."""
    if startup_trials < 0 or warmup_epochs < 0:
        raise InstrlabError("--pruner-startup-trials and --pruner-warmup-epochs must be >= 0")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup_epochs)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup_epochs),
                                                      reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InstrlabError(f"--pruner {name!r} is unknown; use one of {', '.join(PRUNERS)}")


# ---------------------------------------------------------------- counting trials


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """Trials per state; ``counted`` is what ``n_trials`` is measured against."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "interrupted": 0,
           "counted": 0}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            out["running"] += 1
        elif t.state == TrialState.FAIL and ATTR_FAIL in t.user_attrs:
            out["failed"] += 1
        else:
            out["interrupted"] += 1
    out["counted"] = out["complete"] + out["pruned"] + out["failed"] + out["running"]
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials of dead processes on this host as interrupted (FAIL, not counted).

    Storages with heartbeats (RDB) also fail trials of dead workers on other hosts after
    the grace period; a journal file has no heartbeat, hence this check.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host, me = socket.gethostname(), os.getpid()
    storage = study._storage
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(ATTR_PID)
        if t.user_attrs.get(ATTR_HOST) != host or not isinstance(pid, int):
            continue
        if pid != me and _alive(pid):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_INTERRUPTED, True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        dead.append(t.number)
        run_id = t.user_attrs.get(ATTR_RUN)
        if run_id:
            with contextlib.suppress(Exception):
                import mlflow

                client = mlflow.MlflowClient()
                client.set_tag(run_id, TAG_STATE, "INTERRUPTED")
                client.set_terminated(run_id, "KILLED")
    if dead:
        console.print(f"tune: trials {', '.join(map(str, dead))} were cut short by an "
                      "interruption; they do not count and are run again")
    return dead


# ---------------------------------------------------------------- live view and tables


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _state(t: FrozenTrial) -> str:
    if t.state == TrialState.FAIL:
        return "INTERRUPTED" if ATTR_FAIL not in t.user_attrs else "FAIL"
    return t.state.name


class LiveView:
    """A rich panel while a study runs: recent trials, their params, values, best so far."""

    def __init__(self, study: optuna.Study, n_trials: int, space: SearchSpace,
                 enabled: bool, rows: int = 12) -> None:
        self.study, self.n_trials, self.space, self.rows = study, n_trials, space, rows
        self.enabled = enabled and console.is_terminal
        self._trials: list[FrozenTrial] = []
        self._current: dict[int, str] = {}
        self._live: Any = None

    def __enter__(self) -> LiveView:
        self.refresh()
        if self.enabled:
            from rich.live import Live

            self._live = Live(get_renderable=self.render, console=console,
                              refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self.refresh()
            self._live.__exit__(*exc)

    def refresh(self, current: dict[int, str] | None = None) -> None:
        with contextlib.suppress(Exception):  # a view never stops a study
            self._trials = self.study.get_trials(deepcopy=False)
        if current is not None:
            self._current = current

    def render(self) -> Any:
        from rich.table import Table

        trials = list(self._trials)
        c = counts(trials)
        best = _best(trials)
        title = (f"study {self.study.study_name}: {c['counted']}/{self.n_trials} trials "
                 f"({c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed, "
                 f"{c['running']} running)")
        if best is not None:
            title += f"  best {best.value:.4f} (#{best.number})"
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("state")
        for name in self.space.names:
            table.add_column(name, justify="right")
        table.add_column(OBJECTIVE, justify="right")
        table.add_column("best so far", justify="right")
        running_best = -math.inf
        lines = []
        for t in sorted(trials, key=lambda t: t.number):
            if t.state == TrialState.COMPLETE and t.value is not None:
                running_best = max(running_best, t.value)
            value = "" if t.value is None else f"{t.value:.4f}"
            if t.state == TrialState.RUNNING:
                value = self._current.get(t.number, "running")
            elif t.state == TrialState.PRUNED:
                value = f"pruned @ {t.user_attrs.get(ATTR_PRUNED_AT, '?')}"
            lines.append([str(t.number), _state(t),
                          *[_fmt_param(t.params.get(n, "")) for n in self.space.names],
                          value, "" if running_best == -math.inf else f"{running_best:.4f}"])
        for line in lines[-self.rows:]:
            table.add_row(*line)
        return table


def _best(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def top_trials_table(study: optuna.Study, space_names: Sequence[str], top: int = 10) -> Any:
    """The best complete trials, with counts of every state in the caption."""
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: (-t.value, t.number))
    c = counts(trials)
    table = Table(title=f"study {study.study_name}: top {min(top, len(done))} of {len(trials)} "
                        f"trials by {OBJECTIVE}",
                  caption=f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed,"
                          f" {c['interrupted']} interrupted, {c['running']} running")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column(OBJECTIVE, justify="right")
    for name in space_names:
        table.add_column(name, justify="right")
    table.add_column("best epoch", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("MLflow run")
    for rank, t in enumerate(done[:top], 1):
        secs = t.duration.total_seconds() if t.duration else float("nan")
        table.add_row(str(rank), str(t.number), f"{t.value:.4f}",
                      *[_fmt_param(t.params.get(n, "")) for n in space_names],
                      str(t.user_attrs.get(ATTR_BEST_EPOCH, "")), f"{secs:.0f}",
                      str(t.user_attrs.get(ATTR_RUN, "")))
    return table


# ---------------------------------------------------------------- objective


@dataclass
class TuneOptions:
    """How a study runs; the data, model and training configs are passed beside it."""

    study_name: str | None = None
    storage: str | None = None
    n_trials: int = 20
    timeout: float = 0.0
    sampler: str = "tpe"
    sampler_seed: int = 0
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 1
    n_workers: int = 1
    retrain_best: bool = True
    register_as: str | None = None
    run_name: str | None = None
    progress: bool = True
    top: int = 10
    data_workers: int = 0
    search_space: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise InstrlabError(f"--n-trials must be >= 1, got {self.n_trials}")
        if self.n_workers < 1:
            raise InstrlabError(f"--n-workers must be >= 1, got {self.n_workers}")
        if self.timeout < 0:
            raise InstrlabError(f"--timeout must be >= 0 seconds (0: none), got {self.timeout}")


@dataclass
class _Context:
    study: optuna.Study
    space: SearchSpace
    data: DatasetConfig
    model: ModelConfig
    train: TrainConfig
    datasets: dict[str, Any]
    parent_run_id: str
    experiment_id: str
    storage: StorageInfo
    worker: int
    view: LiveView | None = None
    fails_in_a_row: int = 0


def _data_key(cfg: DatasetConfig) -> str:
    return json.dumps(cfg.feature_params, sort_keys=True, default=str)


@contextlib.contextmanager
def _flock(path: os.PathLike[str] | str) -> Iterator[None]:
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _tracking_schema_lock() -> Iterator[None]:
    """Processes started together on one SQLite store create MLflow's tables one at a time."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    if not uri.startswith("sqlite:///"):
        yield
        return
    import hashlib

    db = os.path.abspath(uri[len("sqlite:///"):])
    key = hashlib.sha256(db.encode()).hexdigest()[:16]
    with _flock(os.path.join(tempfile.gettempdir(), f"instrlab-mlflow-{key}.lock")):
        yield


@contextlib.contextmanager
def _dataset_lock(cfg: DatasetConfig) -> Iterator[None]:
    """One builder per dataset on this machine: workers started together wait for the first."""
    import hashlib

    from instrlab.dataset.config import cache_dir

    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    folder = cache_dir() / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    with _flock(folder / f".tune-{key.hexdigest()[:16]}.lock"):
        yield


class _TrialFailed(Exception):
    pass


def _objective(ctx: _Context) -> Callable[[optuna.Trial], float]:
    import mlflow

    from instrlab.pipeline import train_and_evaluate
    from instrlab.tracking import TAG_STEP

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(ATTR_HOST, socket.gethostname())
        trial.set_user_attr(ATTR_PID, os.getpid())
        trial.set_user_attr(ATTR_WORKER, ctx.worker)
        values = ctx.space.suggest(trial)
        data, model, train = ctx.space.apply(values, ctx.data, ctx.model, ctx.train)
        ds = ctx.datasets[_data_key(data)]
        best, epoch_now = -math.inf, 0
        t0 = time.perf_counter()

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            nonlocal best, epoch_now
            epoch_now = epoch
            best = max(best, metrics[OBJECTIVE])
            trial.report(best, epoch)
            if ctx.view is not None:
                ctx.view.refresh({trial.number: f"epoch {epoch}/{train.epochs}: {best:.4f}"})
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at {best:.4f}")

        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True,
                              parent_run_id=ctx.parent_run_id,
                              experiment_id=ctx.experiment_id) as run:
            trial.set_user_attr(ATTR_RUN, run.info.run_id)
            mlflow.set_tags({TAG_STUDY: ctx.study.study_name, TAG_STORAGE: ctx.storage.display,
                             TAG_TRIAL: trial.number, TAG_STATE: "RUNNING",
                             TAG_ROLE: "trial", "instrlab.worker": ctx.worker})
            mlflow.log_params({f"tune.{k}": v for k, v in values.items()})

            def finish(state: str, status: str, **tags: str) -> None:
                # train_and_evaluate tags its runs step=train: a trial is step=trial
                mlflow.set_tags({TAG_STEP: "trial", TAG_STATE: state, **tags})
                mlflow.end_run(status)

            try:
                result = train_and_evaluate(ds, model, train, progress=False, log_model=False,
                                            evaluate_test=False, on_epoch=on_epoch)
            except optuna.TrialPruned:
                trial.set_user_attr(ATTR_PRUNED_AT, epoch_now)
                mlflow.log_metrics({"best_val_macro_f1": max(best, 0.0),
                                    "pruned_at_epoch": epoch_now,
                                    "seconds_trial": time.perf_counter() - t0})
                finish("PRUNED", "KILLED")
                _report(ctx, trial.number, "PRUNED", best, values, t0)
                raise
            except KeyboardInterrupt:
                trial.set_user_attr(ATTR_INTERRUPTED, True)
                finish("INTERRUPTED", "KILLED")
                raise
            except Exception as exc:
                reason = _first_line(exc)
                trial.set_user_attr(ATTR_FAIL, reason)
                finish("FAIL", "FAILED", **{"instrlab.fail_reason": reason})
                _report(ctx, trial.number, f"FAIL ({reason})", best, values, t0)
                ctx.fails_in_a_row += 1
                raise _TrialFailed(reason) from exc
            value = float(result["best_val_macro_f1"])
            trial.set_user_attr(ATTR_BEST_EPOCH, int(result["best_epoch"]))
            mlflow.log_metric("seconds_trial", time.perf_counter() - t0)
            finish("COMPLETE", "FINISHED")
        ctx.fails_in_a_row = 0
        _report(ctx, trial.number, "COMPLETE", value, values, t0)
        return value

    return objective


def _report(ctx: _Context, number: int, state: str, value: float, values: dict[str, Any],
            t0: float) -> None:
    prev = _best(ctx.study.get_trials(deepcopy=False))
    best = max([v for v in (prev.value if prev else None,
                            value if state == "COMPLETE" else None) if v is not None],
               default=None)
    best_text = "" if best is None else f" (best {best:.4f})"
    params = " ".join(f"{k}={_fmt_param(v)}" for k, v in values.items())
    val = f"{value:.4f}" if value > -math.inf else "-"
    who = f"worker {ctx.worker} " if ctx.worker else ""
    console.print(f"{who}trial {number} {state} {OBJECTIVE} {val}{best_text} {params} "
                  f"[{time.perf_counter() - t0:.0f} s]", highlight=False, soft_wrap=True)
    if ctx.view is not None:
        ctx.view.refresh({})


def _run_trials(ctx: _Context, n_trials: int, deadline: float | None) -> int:
    """Trials until the study holds ``n_trials`` counted trials (or the deadline)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials are reported by _report
    objective = _objective(ctx)
    ran = 0
    while True:
        fail_dead_trials(ctx.study)
        if counts(ctx.study.get_trials(deepcopy=False))["counted"] >= n_trials:
            break
        if deadline is not None and time.time() >= deadline:
            console.print("tune: timeout reached; no new trials")
            break
        ctx.study.optimize(objective, n_trials=1, catch=(_TrialFailed,), gc_after_trial=False,
                           show_progress_bar=False)
        ran += 1
        if ctx.fails_in_a_row >= MAX_FAILS_IN_A_ROW:
            last = ctx.study.get_trials(deepcopy=False)[-1].user_attrs.get(ATTR_FAIL, "")
            raise InstrlabError(f"{MAX_FAILS_IN_A_ROW} trials in a row failed (last: {last}); "
                                "fix the search space or the settings")
    return ran


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a trial like Ctrl-C: marked interrupted, its MLflow run KILLED."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ---------------------------------------------------------------- the study


@dataclass
class TuneResult:
    study_name: str
    parent_run_id: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    counts: dict[str, int]
    ran: int
    seconds: float
    best_run_id: str | None = None
    test_macro_f1: float | None = None


def run_tune(options: TuneOptions, data: DatasetConfig, model: ModelConfig, train: TrainConfig,
             *, pruner: optuna.pruners.BasePruner | None = None) -> TuneResult:
    """Run (or continue) a study and track it in one parent MLflow run; see the module doc.

    ``pruner`` replaces the one ``options.pruner`` names (tests use a pruner of their own).
    """
    import mlflow

    from instrlab.params import flat_params
    from instrlab.pipeline import prepare_dataset
    from instrlab.registry import models
    from instrlab.tracking import TAG_STEP, check_tracking, use_experiment

    models.get(model.name)  # unknown model: fail before any work
    space = SearchSpace.parse(options.search_space, data, model, train)
    pruner = pruner or make_pruner(options.pruner, options.pruner_startup_trials,
                                   options.pruner_warmup_epochs)
    sampler = make_sampler(options.sampler, options.sampler_seed)
    storage = open_storage(options.storage)
    name = options.study_name or default_study_name(data, model, train)
    if options.n_workers > 1 and train.num_threads == 0:
        train = dataclasses.replace(train, num_threads=max(1, (os.cpu_count() or 1)
                                                           // options.n_workers))
    setup = study_setup(space, data, model, train)
    study = open_study(storage, name, space, setup, sampler, pruner)
    with _tracking_schema_lock():
        check_tracking()  # creates MLflow's schema once, before any worker starts
    use_experiment(data.instruments)
    t_start = time.perf_counter()
    run_name = options.run_name or f"tune {name}"
    with mlflow.start_run(run_name=run_name) as parent, _sigterm_as_interrupt():
        parent_id, exp_id = parent.info.run_id, parent.info.experiment_id
        mlflow.set_tags({TAG_STEP: "tune", TAG_ROLE: "tune", TAG_STUDY: name,
                         TAG_STORAGE: storage.display,
                         "instrlab.model": model.name, "instrlab.features": data.features,
                         "instrlab.instruments": data.instruments})
        mlflow.log_params({
            "tune.study": name, "tune.storage": storage.display,
            "tune.n_trials": options.n_trials, "tune.timeout": options.timeout,
            "tune.sampler": options.sampler, "tune.sampler_seed": options.sampler_seed,
            "tune.pruner": type(pruner).__name__, "tune.n_workers": options.n_workers,
            "tune.search_space": space.text(), "tune.objective": OBJECTIVE,
            **data.flat_params(), **flat_params("model", dataclasses.asdict(model)),
            **flat_params("train", {k: v for k, v in train.to_dict().items()
                             if k not in {p.name for p in space.by_target("train")}}),
        })
        mlflow.log_dict({"search_space": space.to_json(), "setup": setup},
                        "tune/search_space.json")
        datasets = {}
        for variant in space.data_variants(data):
            with _dataset_lock(variant):
                datasets[_data_key(variant)] = prepare_dataset(
                    variant, workers=options.data_workers, progress=options.progress,
                    nested_run=True)
        before = counts(study.get_trials(deepcopy=False))
        console.print(f"tune: study {name} in {storage.display}: {before['counted']} of "
                      f"{options.n_trials} trials there; search space {space.text()}",
                      highlight=False, soft_wrap=True)
        ctx = _Context(study, space, data, model, train, datasets, parent_id, exp_id, storage,
                       worker=0)
        deadline = time.time() + options.timeout if options.timeout else None
        procs = _spawn_workers(options, data, model, train, parent_id, exp_id, name)
        try:
            with LiveView(study, options.n_trials, space, options.progress) as view:
                ctx.view = view
                ran = _run_trials(ctx, options.n_trials, deadline)
                _wait_workers(procs, view)
                _wait_running(study, view)
        except KeyboardInterrupt:
            _stop_workers(procs)
            mlflow.set_tag("instrlab.interrupted", "true")
            mlflow.end_run("KILLED")
            raise
        finally:
            _stop_workers(procs)
        ctx.view = None
        bad = [i for i, p in enumerate(procs, 1) if p.returncode != 0]
        if bad:
            raise InstrlabError(f"tune worker(s) {', '.join(map(str, bad))} failed (exit codes "
                                f"{', '.join(str(procs[i - 1].returncode) for i in bad)}); "
                                "see their messages above")
        seconds = time.perf_counter() - t_start
        result = _summarise(study, space, options, seconds, ran)
        result.parent_run_id = parent_id
        if options.retrain_best and result.best_trial is not None:
            _retrain_best(result, study, space, data, model, train, datasets, options)
    return result


def _summarise(study: optuna.Study, space: SearchSpace, options: TuneOptions, seconds: float,
               ran: int) -> TuneResult:
    """Log the study's outcome to the active (parent) run and print the top trials."""
    import mlflow
    from rich.console import Console

    trials = study.get_trials(deepcopy=False)
    c = counts(trials)
    best = _best(trials)
    mlflow.log_metrics({"n_trials_total": len(trials), "n_trials_complete": c["complete"],
                        "n_trials_pruned": c["pruned"], "n_trials_failed": c["failed"],
                        "n_trials_interrupted": c["interrupted"], "n_trials_this_run": ran,
                        "seconds_tune": seconds})
    with contextlib.suppress(Exception):
        mlflow.log_text(study.trials_dataframe().to_csv(index=False), "tune/trials.csv")
    log_study_plots(study, space)
    out = Console()
    if not out.is_terminal:  # logs and pipes: no truncated columns
        out = Console(width=max(out.width, 140))
    out.print(top_trials_table(study, space.names, options.top))
    if best is None:
        mlflow.set_tag("instrlab.best_trial", "none")
        console.print(f"tune: no trial of study {study.study_name} completed yet")
        return TuneResult(study.study_name, "", None, {}, None, c, ran, seconds)
    mlflow.log_metric("best_val_macro_f1", best.value)
    mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
    mlflow.set_tags({"instrlab.best_trial": best.number,
                     "instrlab.best_trial_run_id": best.user_attrs.get(ATTR_RUN, "")})
    mlflow.log_dict({"trial": best.number, "value": best.value, "params": best.params},
                    "tune/best_params.json")
    print(f"study {study.study_name}: best {OBJECTIVE} {best.value:.4f} (trial {best.number}: "
          f"{' '.join(f'{k}={_fmt_param(v)}' for k, v in best.params.items())}); "
          f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed; "
          f"{seconds:.0f} s")
    return TuneResult(study.study_name, "", best.value, dict(best.params), best.number, c, ran,
                      seconds)


def log_study_plots(study: optuna.Study, space: SearchSpace) -> list[str]:
    """Optuna's matplotlib plots as artifacts of the active run; returns the paths logged."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from optuna.visualization import matplotlib as ovm

    from instrlab.tracking import log_figure

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    logged: list[str] = []

    def save(make: Callable[[], Any], path: str) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make()
            fig = np.ravel(axes)[0].figure
            fig.set_size_inches(max(fig.get_size_inches()[0], 8), fig.get_size_inches()[1])
            log_figure(fig, path)
            logged.append(path)
        except Exception as exc:  # a missing plot never fails a study
            console.print(f"tune: no {path} ({_first_line(exc)})")

    if not done:
        return logged
    save(lambda: ovm.plot_optimization_history(study, target_name=OBJECTIVE),
         "plots/optimization_history.png")
    save(lambda: ovm.plot_intermediate_values(study), "plots/intermediate_values.png")
    varied = [n for n in space.names if len({repr(t.params.get(n)) for t in done}) > 1]
    if len(done) >= 2 and varied:
        save(lambda: ovm.plot_param_importances(study, params=varied),
             "plots/param_importances.png")
    pair = [n for n in ("lr", "batch_size") if n in varied]
    if len(pair) == 2:
        save(lambda: ovm.plot_contour(study, params=pair, target_name=OBJECTIVE),
             "plots/contour_lr_batch_size.png")
    save(lambda: ovm.plot_slice(study, params=pair or varied or space.names,
                                target_name=OBJECTIVE), "plots/slice.png")
    return logged


def _retrain_best(result: TuneResult, study: optuna.Study, space: SearchSpace,
                  data: DatasetConfig, model: ModelConfig, train: TrainConfig,
                  datasets: dict[str, Any], options: TuneOptions) -> None:
    """Train the best trial's configs again in a nested run; evaluate it once on test."""
    import mlflow

    from instrlab.pipeline import train_and_evaluate

    best = next(t for t in study.get_trials(deepcopy=False) if t.number == result.best_trial)
    data_b, model_b, train_b = space.apply(best.params, data, model, train)
    ds = datasets[_data_key(data_b)]
    console.print(f"tune: retraining trial {best.number} ({best.value:.4f}) and testing it once")
    with mlflow.start_run(run_name=f"best (trial {best.number})", nested=True) as run:
        mlflow.set_tags({TAG_ROLE: "best", TAG_STUDY: study.study_name,
                         TAG_TRIAL: best.number,
                         "instrlab.trial_run_id": best.user_attrs.get(ATTR_RUN, "")})
        mlflow.log_params({f"tune.{k}": v for k, v in best.params.items()})
        metrics = train_and_evaluate(ds, model_b, train_b, register_as=options.register_as,
                                     progress=options.progress, log_model=True)
    result.best_run_id = run.info.run_id
    result.test_macro_f1 = float(metrics["test_macro_f1"])
    mlflow.log_metrics({"best_test_macro_f1": result.test_macro_f1,
                        "best_retrained_val_macro_f1": float(metrics["best_val_macro_f1"])})
    mlflow.set_tag("instrlab.best_run_id", run.info.run_id)
    print(f"best run {run.info.run_id}: test_macro_f1 {result.test_macro_f1:.4f} "
          f"(val {metrics['best_val_macro_f1']:.4f})")


# ---------------------------------------------------------------- worker processes


def _spawn_workers(options: TuneOptions, data: DatasetConfig, model: ModelConfig,
                   train: TrainConfig, parent_id: str, exp_id: str,
                   name: str) -> list[subprocess.Popen[bytes]]:
    """``n_workers - 1`` processes of :func:`worker_main` on the same storage and parent run."""
    import mlflow

    if options.n_workers <= 1:
        return []
    spec = {
        "options": {**dataclasses.asdict(options), "study_name": name, "n_workers": 1,
                    "progress": False, "retrain_best": False},
        "data": data.to_dict(), "model": dataclasses.asdict(model), "train": train.to_dict(),
        "parent_run_id": parent_id, "experiment_id": exp_id,
    }
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    procs = []
    for i in range(1, options.n_workers):
        fd, path = tempfile.mkstemp(prefix=f"instrlab-tune-worker{i}-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({**spec, "worker": i}, fh, default=str)
        procs.append(subprocess.Popen([sys.executable, "-m", "instrlab.tune", path], env=env))
    console.print(f"tune: started {len(procs)} worker process(es) beside this one")
    return procs


def _wait_workers(procs: list[subprocess.Popen[bytes]], view: LiveView | None) -> None:
    while any(p.poll() is None for p in procs):
        if view is not None:
            view.refresh()
        time.sleep(1.0)


def _wait_running(study: optuna.Study, view: LiveView | None) -> None:
    """Let trials that other workers are running finish, so the summary is the study's.

    Trials of dead workers are failed meanwhile (heartbeat or dead process); trials that
    neither finish nor go stale are left after twice the longest trial time plus a minute.
    """
    trials = study.get_trials(deepcopy=False)
    longest = max([t.duration.total_seconds() for t in trials if t.duration] or [0.0])
    limit = time.time() + 2 * longest + 60
    said = False
    while time.time() < limit:
        fail_dead_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not said:
            console.print(f"tune: waiting for {len(running)} trial(s) of other workers")
            said = True
        if view is not None:
            view.refresh()
        time.sleep(2.0)


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def worker_main(argv: Sequence[str]) -> int:
    """A worker started by :func:`run_tune`: trials only, under the given parent run."""
    from instrlab.pipeline import prepare_dataset

    path = argv[0]
    with open(path) as fh:
        spec = json.load(fh)
    with contextlib.suppress(OSError):
        os.unlink(path)
    options = TuneOptions(**spec["options"])
    data = DatasetConfig.from_dict(spec["data"])
    model = ModelConfig(**spec["model"])
    train = TrainConfig(**spec["train"])
    space = SearchSpace.parse(options.search_space, data, model, train)
    storage = open_storage(options.storage)
    study = optuna.load_study(study_name=options.study_name, storage=storage.storage,
                              sampler=make_sampler(options.sampler, options.sampler_seed),
                              pruner=make_pruner(options.pruner, options.pruner_startup_trials,
                                                 options.pruner_warmup_epochs))
    datasets = {}
    for variant in space.data_variants(data):
        with _dataset_lock(variant):
            datasets[_data_key(variant)] = prepare_dataset(variant, workers=options.data_workers,
                                                           progress=False)
    ctx = _Context(study, space, data, model, train, datasets, spec["parent_run_id"],
                   spec["experiment_id"], storage, worker=int(spec["worker"]))
    deadline = time.time() + options.timeout if options.timeout else None
    with _sigterm_as_interrupt():
        _run_trials(ctx, options.n_trials, deadline)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(worker_main(sys.argv[1:]))
    except InstrlabError as exc:
        print(f"instrlab: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
