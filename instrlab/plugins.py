"""Plugin discovery: built-ins, entry points, ``plugins/`` modules and TOML instrument sets.

Sources, in load order:
1. the built-in components of :mod:`instrlab`, imported by each registry on first use
   (so reading an instrument set does not import torch for the models);
2. Python entry points in group ``instrlab.plugins`` (installed packages); each entry
   point names a module (or a callable, which is called once) that registers things;
3. every ``*.py`` module and ``*.toml`` instrument set in the project's ``plugins/``
   directory and in each directory of the ``INSTRLAB_PLUGINS`` path variable.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from instrlab.errors import InstrlabError, PluginError
from instrlab.registry import registering_from

ENTRY_POINT_GROUP = "instrlab.plugins"
PATH_VARIABLE = "INSTRLAB_PLUGINS"

_loaded: list[bool] = []


def plugin_dirs() -> list[Path]:
    """Directories searched for plugin files: ``./plugins`` then ``$INSTRLAB_PLUGINS``."""
    dirs = [Path.cwd() / "plugins"]
    for part in os.environ.get(PATH_VARIABLE, "").split(os.pathsep):
        if part:
            path = Path(part).expanduser()
            if not path.is_dir():
                raise PluginError(
                    f"{PATH_VARIABLE} names {path}, which is not a directory; "
                    "fix or remove that entry"
                )
            dirs.append(path)
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def load_plugins(force: bool = False) -> None:
    """Import every plugin once per process (``force`` reloads directory plugins)."""
    if _loaded and not force:
        return
    _loaded.append(True)
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(ep)
        for directory in plugin_dirs():
            load_directory(directory)
    except Exception:
        _loaded.clear()
        raise


def _load_entry_point(ep) -> None:  # noqa: ANN001 - importlib.metadata.EntryPoint
    source = f"entry point {ep.name} ({ep.value})"
    with registering_from(source):
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {source} failed to import: {exc}") from exc
        if callable(obj):
            try:
                obj()
            except InstrlabError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {source} failed: {exc}") from exc


def load_directory(directory: Path) -> None:
    """Load every ``*.py`` module and ``*.toml`` instrument set in ``directory``."""
    from instrlab.instruments import load_toml_instrument_set

    for path in sorted(directory.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py":
            load_module_file(path)
        elif path.suffix == ".toml":
            with registering_from(f"plugin file {path}"):
                load_toml_instrument_set(path)


def load_module_file(path: Path) -> None:
    """Import one plugin module file, attributing its registrations to it."""
    mod_name = f"instrlab_plugin_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path} cannot be imported; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    with registering_from(f"plugin file {path}"):
        try:
            spec.loader.exec_module(module)
        except InstrlabError as exc:
            del sys.modules[mod_name]
            raise PluginError(f"plugin {path}: {exc}") from exc
        except Exception as exc:
            del sys.modules[mod_name]
            raise PluginError(
                f"plugin {path} failed to import: {type(exc).__name__}: {exc}; "
                "fix it or move it out of the plugin directory"
            ) from exc
