"""The search space: ``NAME=KIND:ARGS`` specs parsed into Optuna distributions and checked.

Each tuned parameter is a :class:`TunedParam`: its name, where it goes (``train``,
``model`` or ``data``, see :mod:`instrlab.tune.targets`) and an
:mod:`optuna.distributions` distribution. KIND maps to ``FloatDistribution(log=...)``
(``loguniform``, ``uniform``), ``IntDistribution(log=..., step=...)`` (``int``,
``logint``) or ``CategoricalDistribution`` (``categorical``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError
from instrlab.features import get_extractor
from instrlab.instruments import get_instrument_set
from instrlab.models.factory import ModelConfig, build_model
from instrlab.training import TrainConfig
from instrlab.tune.options import DEFAULT_SPACE, KINDS
from instrlab.tune.targets import TARGETS, check_kind, resolve_name


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """``trial``'s value for ``name`` drawn from ``dist``, through the public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"no suggest for {type(dist).__name__}")


def kind_of(dist: BaseDistribution) -> str:
    """The KIND a user writes for ``dist`` (one of :data:`~instrlab.tune.options.KINDS`)."""
    if isinstance(dist, CategoricalDistribution):
        return "categorical"
    if isinstance(dist, IntDistribution):
        return "logint" if dist.log else "int"
    return "loguniform" if isinstance(dist, FloatDistribution) and dist.log else "uniform"


@dataclass(frozen=True)
class TunedParam:
    """One tuned parameter: where it goes (``train``/``model``/``data``) and its range."""

    name: str
    target: str
    dist: BaseDistribution

    @property
    def kind(self) -> str:
        return kind_of(self.dist)

    def suggest(self, trial: optuna.Trial) -> Any:
        return suggest(trial, self.name, self.dist)

    def edge_values(self) -> list[Any]:
        """The values that bound the range: checked against the configs before any work."""
        if isinstance(self.dist, CategoricalDistribution):
            return list(self.dist.choices)
        return [self.dist.low, self.dist.high]

    def text(self) -> str:
        """The spec as the user writes it (``lr=loguniform:0.0001:0.01``)."""
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            args = ",".join(fmt_value(c) for c in d.choices)
        else:
            args = f"{fmt_value(d.low)}:{fmt_value(d.high)}"
            if isinstance(d, IntDistribution) and d.step != 1:
                args += f":{d.step}"
        return f"{self.name}={self.kind}:{args}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target,
                "distribution": json.loads(distribution_to_json(self.dist))}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TunedParam:
        """Inverse of :meth:`to_json`; also reads the ``kind``/``low``/``high`` form of
        studies made before the distributions were Optuna's."""
        if "distribution" in obj:
            dist = json_to_distribution(json.dumps(obj["distribution"]))
        elif obj["kind"] == "categorical":
            dist = CategoricalDistribution(obj["choices"])
        elif obj["kind"] in ("int", "logint"):
            dist = IntDistribution(obj["low"], obj["high"], log=obj["kind"] == "logint",
                                   step=obj.get("step") or 1)
        else:
            dist = FloatDistribution(obj["low"], obj["high"], log=obj["kind"] == "loguniform")
        return cls(obj["name"], obj["target"], dist)


@dataclass(frozen=True)
class SearchSpace:
    """The tuned parameters, in order; parsed and checked by :meth:`parse`."""

    params: tuple[TunedParam, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def by_target(self, target: str) -> list[TunedParam]:
        return [p for p in self.params if p.target == target]

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.params]

    @classmethod
    def from_json(cls, items: Sequence[dict[str, Any]]) -> SearchSpace:
        return cls(tuple(TunedParam.from_json(p) for p in items))

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
        model = dataclasses.replace(model, params={**model.params, **part["model"]})
        train = dataclasses.replace(train, **part["train"])
        return data, model, train

    def data_variants(self, data: DatasetConfig) -> list[DatasetConfig]:
        """Every dataset the trials can ask for (one per combination of data choices)."""
        specs = self.by_target("data")  # all categorical: their edge values are the choices
        out = []
        for combo in itertools.product(*[p.edge_values() for p in specs]):
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
        specs: dict[str, TunedParam] = {}
        given: dict[str, str] = {}  # the user's specs by parameter name
        user = _split_items(items)
        for i, item in enumerate([*defaults, *user]):
            name, sep, rest = item.partition("=")
            name, rest = name.strip(), rest.strip()
            if not sep or not name or not rest:
                raise InstrlabError(
                    f"--search-space {item!r} must look like NAME=KIND:ARGS, e.g. "
                    "lr=loguniform:1e-4:1e-2 or batch_size=categorical:16,32,64"
                )
            target, bare = resolve_name(name, item, data, model, train)
            if i >= len(defaults):
                if bare in given:
                    raise InstrlabError(f"--search-space gives {bare} twice ({given[bare]!r} "
                                        f"and {item!r}); keep one of them")
                given[bare] = item
            if rest.lower() == "off":
                specs.pop(bare, None)
                continue
            spec = TunedParam(bare, target, _parse_range(bare, rest, item))
            check_kind(bare, target, spec.kind, spec.edge_values(), item, model, train)
            specs[bare] = spec
        if not specs:
            raise InstrlabError("the search space is empty: tune at least one parameter")
        space = cls(tuple(specs.values()))
        space.check_values(data, model, train)
        return space

    def check_values(self, data: DatasetConfig, model: ModelConfig, train: TrainConfig) -> None:
        """Build the configs (and the model) at every bound: bad values fail before any work."""
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
                cfg = dataclasses.replace(model, params={**model.params, p.name: v})
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


def fmt_value(v: Any) -> str:
    """A value as the user writes it in a spec."""
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


def _parse_range(name: str, rest: str, item: str) -> BaseDistribution:
    """The distribution of ``KIND:ARGS``; every range checked with the user's words."""
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
        return CategoricalDistribution(choices)
    parts = args.split(":")
    need = "LOW:HIGH[:STEP]" if kind == "int" else "LOW:HIGH"
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        raise InstrlabError(f"--search-space {item!r}: {kind} takes {need}")
    low, high = (_number(p, item) for p in parts[:2])
    step = 1
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
    if kind in ("int", "logint"):
        return IntDistribution(int(low), int(high), log=kind == "logint", step=step)
    return FloatDistribution(low, high, log=kind == "loguniform")

