"""Named registries of components: instrument sets, synth backends, features, models.

Modelled on timm's ``register_model``/``create_model`` and spaCy's registries: plain
callables registered by name, looked up by name, listed with where they came from.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from instrlab.errors import InstrlabError, UnknownNameError

T = TypeVar("T", bound=Callable[..., Any])

BUILTIN = "built-in"
_current_source: list[str] = [BUILTIN]

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
NAME_RULE = ("names are 1..64 lower-case letters, digits, '_', '.' or '-', start with a letter "
             "or digit and hold no '..'")
"""The one rule for every registered name: names become path components (dataset
directories are named after the instrument set and features), so none may hold a path
separator or climb out of a directory."""


def check_name(name: object, what: str, fix: str) -> str:
    """``name`` if it follows :data:`NAME_RULE`, else an :class:`InstrlabError` naming ``what``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InstrlabError(f"{what} {name!r} is not a valid name: {NAME_RULE}; {fix}")
    return name


@contextlib.contextmanager
def registering_from(source: str) -> Iterator[None]:
    """Attribute every registration made inside the block to ``source``."""
    _current_source.append(source)
    try:
        yield
    finally:
        _current_source.pop()


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component."""

    name: str
    factory: T
    source: str
    description: str
    override: bool = False
    code: str | None = None
    """For a plugin, a digest of its code when it registered (see :func:`code_digest`);
    None for built-ins, whose code instrlab's version names."""


def code_digest(fn: Callable[..., Any]) -> str | None:
    """sha256 (16 hex digits) of the code that defines ``fn``: every ``*.py`` file of its
    top-level package (a helper module it imports is its code too), or its module file
    when that is not in a package (a plugin directory's file); None without a file."""
    module_name = getattr(fn, "__module__", None) or ""
    path = getattr(sys.modules.get(module_name), "__file__", None)
    top = sys.modules.get(module_name.split(".")[0])
    top_file = getattr(top, "__file__", None)
    if path is None:
        return None
    if hasattr(top, "__path__") and top_file:
        root = Path(top_file).parent
        files = sorted(root.rglob("*.py"))
    else:
        root, files = Path(path).parent, [Path(path)]
    digest = hashlib.sha256()
    try:
        for f in files:
            digest.update(f.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(f.read_bytes()).digest())
    except OSError:
        return None
    return digest.hexdigest()[:16]


class Registry(Generic[T]):
    """A name -> factory mapping with helpful errors."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.builtin_modules = builtin_modules
        self._entries: dict[str, Entry[T]] = {}

    def _load(self) -> None:
        """Import this registry's built-ins (only its own: models pull in torch), then plugins.

        Both are named, not imported at the top, as catalogue names entry points: the
        registry stays the bottom layer that the components and plugin loader build on.
        """
        for module in self.builtin_modules:
            importlib.import_module(module)
        importlib.import_module(PLUGIN_LOADER).load_plugins()

    def register(
        self, name: str | None = None, factory: T | None = None, *, override: bool = False
    ) -> Any:
        """Register ``factory`` under ``name``; usable as ``@reg.register("x")`` or a call."""

        def add(fn: T) -> T:
            key = check_name(name or fn.__name__, f"{self.kind} name", "rename it")
            source = _current_source[-1]
            old = self._entries.get(key)
            if old is not None and old.override and source == BUILTIN:
                return fn  # a plugin replaced this built-in before it was imported
            if old is not None and not override:
                raise InstrlabError(
                    f"{self.kind} {key!r} is already registered (by {old.source}); "
                    "rename it or register it with override=True"
                )
            doc = (fn.__doc__ or "").strip().splitlines()
            code = None if source == BUILTIN else code_digest(fn)
            self._entries[key] = Entry(key, fn, source, doc[0] if doc else "", override, code)
            return fn

        if factory is not None:
            return add(factory)
        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and by plugins that replace a component)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; unknown names list the known ones and the closest match."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            skipped = importlib.import_module(PLUGIN_LOADER).skipped_note()
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known) or 'none'}"
                f"{skipped}"
            ) from None

    def get(self, name: str) -> T:
        """The factory registered under ``name``."""
        return self.entry(name).factory

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Call the factory registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every entry, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self.names()


PLUGIN_LOADER = "instrlab.plugins"
"""Module whose ``load_plugins()`` imports entry points and plugin directories, and whose
``skipped_note()`` says which ``./plugins`` it left out."""

# Built-in components: one module each, imported on a registry's first lookup.
instrument_sets: Registry[Callable[..., Any]] = Registry(
    "instrument set", ("instrlab.instruments",))
synths: Registry[Callable[..., Any]] = Registry(
    "synth backend", ("instrlab.synth.fluidsynth_backend",))
features: Registry[Callable[..., Any]] = Registry(
    "feature extractor", ("instrlab.features.logmel", "instrlab.features.seed_image"))
models: Registry[Callable[..., Any]] = Registry(
    "model", ("instrlab.models.mel_cnn", "instrlab.models.seed_cnn"))
score_generators: Registry[Callable[..., Any]] = Registry(
    "score generator", ("instrlab.scores.seed_random", "instrlab.scores.paced_random",
                        "instrlab.scores.melody",
                        "instrlab.scores.chords", "instrlab.scores.sustained",
                        "instrlab.scores.ensemble", "instrlab.scores.corpus",
                        "instrlab.scores.midi_files"))

ALL: dict[str, Registry[Any]] = {
    "instruments": instrument_sets,
    "synths": synths,
    "features": features,
    "models": models,
    "scores": score_generators,
}
