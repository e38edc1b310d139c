"""Settings by dotted path: ``override`` sets ``train.epochs`` or ``data.augment.gain_db``
on frozen dataclass configs, coercing text by each field's type; ``--set`` and TOML files
become such changes. Generic: it knows no instrlab config (:mod:`instrlab.config` uses it).

Written here rather than taken from a config library (OmegaConf, tyro): instrlab's
configs are frozen, validating dataclasses, and the whole job is ~150 lines.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shlex
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from instrlab.errors import InstrlabError
from instrlab.params import flat_params


def override(cfg: Any, changes: Mapping[str, Any]) -> Any:
    """``cfg`` with each dotted ``path: value`` of ``changes`` set, in order.

    Strings are parsed by the field's type (``"24"`` for an int, ``"1,2"`` or ``"[1, 2]"``
    for a pair, ``"true"`` for a bool); unknown names are one-line errors that suggest the
    closest known one.
    """
    for path, value in changes.items():
        cfg = _set(cfg, path.split("."), value, path)
    return cfg


def _set(obj: Any, parts: list[str], value: Any, path: str) -> Any:
    if isinstance(obj, dict):  # free-form mappings such as model.params
        if len(parts) != 1:
            raise InstrlabError(f"setting {path!r}: {parts[0]!r} holds plain values")
        return {**obj, parts[0]: _loose(value)}
    names = [f.name for f in dataclasses.fields(obj)]
    head = parts[0]
    if head not in names:
        close = difflib.get_close_matches(head, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InstrlabError(f"unknown setting {path!r}.{hint} Known here: {', '.join(names)}")
    hint_type = typing.get_type_hints(type(obj))[head]
    if len(parts) == 1:
        new = coerce(value, hint_type, path)
    else:
        new = _set(getattr(obj, head), parts[1:], value, path)
    try:
        return dataclasses.replace(obj, **{head: new})
    except TypeError as exc:
        raise InstrlabError(f"setting {path!r}: {exc}") from exc


def _loose(value: Any) -> Any:
    """A value of unknown type: JSON where it parses (numbers, lists, true), else text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def coerce(value: Any, hint: Any, path: str = "value") -> Any:
    """``value`` (text, or TOML/JSON data) as the type ``hint`` asks for."""
    try:
        return _coerce(value, hint)
    except (TypeError, ValueError) as exc:
        raise InstrlabError(f"setting {path!r}: {value!r} is not a valid {_name(hint)} "
                            f"({exc})") from None


def _coerce(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or str(value).lower() in ("", "none", "null")):
            return None
        rest = [a for a in args if a is not type(None)]
        return _coerce(value, rest[0]) if len(rest) == 1 else value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        data = _loose(value)
        if not isinstance(data, Mapping):
            raise TypeError("expected a table of its fields")
        return override(hint(), flat_params("", data))
    if origin is tuple:
        items = _loose(value)
        if isinstance(items, str):  # "1,2", "1 2" or "[a.sf2]" (a shell ate the quotes)
            text = items.strip().removeprefix("[").removesuffix("]")
            if text.lower() == "none":  # as `show` writes an empty tuple
                text = ""
            items = [s.strip("'\"") for s in text.replace(",", " ").split() if s]
        if not isinstance(items, (list, tuple)):
            items = [items]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in items)
        if len(args) == 2 and len(items) == 1 and "=" in str(items[0]):  # NAME=WEIGHT
            items = str(items[0]).split("=", 1)
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} values")
        return tuple(_coerce(v, a) for v, a in zip(items, args))
    if origin is dict or hint is dict:
        data = _loose(value)
        if not isinstance(data, Mapping):
            raise TypeError("expected a table")
        return dict(data)
    if hint is bool:
        return parse_bool(value)
    if hint is int:
        if isinstance(value, float) or isinstance(value, bool):
            raise TypeError("expected a whole number")
        return int(value)
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError("expected text")
        return value
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def get(cfg: Any, path: str) -> Any:
    """The value at a dotted ``path`` of ``cfg``."""
    for part in path.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


# ---------------------------------------------------------------- text and files


def parse_assignments(items: str | Iterable[str]) -> dict[str, str]:
    """``PATH=VALUE`` pairs from strings that may hold several, split like a shell line."""
    texts = [items] if isinstance(items, str) else list(items)
    out: dict[str, str] = {}
    for text in texts:
        try:
            words = shlex.split(text.replace(";", " "))
        except ValueError as exc:
            raise InstrlabError(f"--set {text!r}: {exc}") from None
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise InstrlabError(f"--set {word!r} must look like PATH=VALUE, e.g. "
                                    "train.epochs=30")
            out[key.strip()] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """The dotted settings of a TOML config file (tables nest: ``[train] epochs = 30``)."""
    p = Path(path).expanduser()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InstrlabError(f"config file {p} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InstrlabError(f"config file {p} is not readable TOML ({exc})") from None
    changes = flat_params("", {k: v for k, v in data.items() if k != "preset"})
    if "preset" in data:
        changes = {"preset": data["preset"], **changes}
    return changes
