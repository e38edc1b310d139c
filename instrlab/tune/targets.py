"""Where a search-space name goes: a training setting, a model parameter or a feature one.

``lr`` is a field of :class:`~instrlab.training.TrainConfig`, ``dropout`` a keyword of the
model's factory, ``n_mels`` a keyword of the feature extractor; ``train.``, ``model.`` and
``data.`` prefixes settle a name that is more than one of these. The KIND must suit the
parameter's type (:func:`check_kind`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError
from instrlab.features import get_extractor
from instrlab.models.factory import ModelConfig
from instrlab.registry import models
from instrlab.training import TrainConfig

TARGETS = ("train", "model", "data")
UNTUNABLE_TRAIN = {"device", "num_threads"}


def train_types(train: TrainConfig) -> dict[str, type]:
    """Tunable training settings with the type of their current value."""
    return {f.name: type(getattr(train, f.name)) for f in dataclasses.fields(train)
            if f.name not in UNTUNABLE_TRAIN}


def model_params(model: ModelConfig) -> tuple[dict[str, type | None], bool]:
    """Keyword parameters of the model factory with their default's type; any ``**kwargs``."""
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


def param_type(target: str, name: str, model: ModelConfig, train: TrainConfig) -> type | None:
    """The type a parameter takes (None: unknown, anything goes)."""
    if target == "train":
        return train_types(train)[name]
    if target == "model":
        return model_params(model)[0].get(name)
    return None


def is_feature_param(name: str, data: DatasetConfig) -> bool:
    """Whether the feature extractor of ``data`` takes a keyword ``name``."""
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


def resolve_name(name: str, item: str, data: DatasetConfig, model: ModelConfig,
                 train: TrainConfig) -> tuple[str, str]:
    """``(target, bare name)`` of a search-space name (``lr``, ``model.dropout``, ...)."""
    prefix, dot, bare = name.partition(".")
    train_names = train_types(train)
    model_names, model_any = model_params(model)
    if dot:
        if prefix not in TARGETS:
            raise InstrlabError(f"--search-space {item!r}: prefix {prefix!r} is unknown; use "
                                "train., model. or data.")
        ok = {"train": lambda: bare in train_names,
              "model": lambda: bare in model_names or model_any,
              "data": lambda: is_feature_param(bare, data)}[prefix]()
        if not ok:
            raise InstrlabError(_unknown_message(bare, item, model, data, train_names,
                                                 model_names))
        return prefix, bare
    found = [t for t, names in (("train", train_names), ("model", model_names))
             if name in names]
    if not found and name in (f.name for f in dataclasses.fields(train)):
        raise InstrlabError(f"--search-space {item!r}: {name} is not tunable (it chooses "
                            "where and how fast training runs, not what it learns)")
    if not found and is_feature_param(name, data):
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


def check_kind(name: str, target: str, kind: str, values: list[Any], item: str,
               model: ModelConfig, train: TrainConfig) -> None:
    """The KIND and the bounds or choices ``values`` must suit the parameter's type (ints
    stay ints, ...); a feature parameter must be categorical."""
    if target == "data" and kind != "categorical":
        raise InstrlabError(
            f"--search-space {item!r}: feature parameters change the dataset, which is built "
            f"once before the trials; list the values: {name}=categorical:A,B"
        )
    want = param_type(target, name, model, train)
    if want is None:
        return
    if want is bool:
        ok = kind == "categorical" and all(isinstance(v, bool) for v in values)
        hint = "categorical:true,false"
    elif want is int:
        ok = kind in ("int", "logint") or (
            kind == "categorical" and all(type(v) is int for v in values))
        hint = "int:LOW:HIGH, logint:LOW:HIGH or categorical of whole numbers"
    elif want is float:
        ok = kind != "categorical" or all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        hint = "uniform, loguniform or categorical of numbers"
    elif want is str:
        ok = kind == "categorical" and all(isinstance(v, str) for v in values)
        hint = "categorical:A,B"
    else:
        return
    if not ok:
        raise InstrlabError(f"--search-space {item!r}: {name} takes {want.__name__} "
                            f"values; use {hint}")
