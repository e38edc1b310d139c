"""Plugin discovery: built-ins, entry points, plugin directories and TOML instrument sets.

Sources, in load order:
1. the built-in components of :mod:`instrlab`, imported by each registry on first use
   (so reading an instrument set does not import torch for the models);
2. Python entry points in group ``instrlab.plugins`` (installed packages); each entry
   point names a module (or a callable, which is called once) that registers things;
3. every ``*.py`` module and ``*.toml`` instrument set in the plugin directories.

Plugin files are code, so a plugin directory is loaded only on purpose: each directory of
the ``INSTRLAB_PLUGINS`` path variable, and ``./plugins`` only when it is the ``plugins/``
of the instrlab checkout this package runs from (an editable install, working in the
project's own directory). Any other ``./plugins`` is skipped, and ``instrlab list`` says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

from instrlab.errors import InstrlabError, PluginError
from instrlab.registry import registering_from

ENTRY_POINT_GROUP = "instrlab.plugins"
PATH_VARIABLE = "INSTRLAB_PLUGINS"

_loaded: list[bool] = []
_loaded_from: list[str] = []
"""What the last load imported, for ``instrlab list``: entry points and directories."""
_skipped: list[str] = []
"""Why the last load left ``./plugins`` out (empty when it did not)."""


def _checkout_root() -> Path | None:
    """The instrlab checkout this package is imported from (editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return root if re.search(r'^name\s*=\s*"instrlab"\s*$', text, re.MULTILINE) else None


PROJECT_ROOT: Path | None = _checkout_root()
"""Whose ``plugins/`` loads without being named: that of the checkout instrlab runs from."""


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _find_dirs() -> tuple[list[tuple[Path, str]], str]:
    """Plugin directories with why each is loaded, and why ``./plugins`` was skipped ('')."""
    named: list[tuple[Path, str]] = []
    for part in os.environ.get(PATH_VARIABLE, "").split(os.pathsep):
        if part:
            path = Path(os.path.abspath(Path(part).expanduser()))
            if not path.is_dir():
                raise PluginError(
                    f"{PATH_VARIABLE} names {path}, which is not a directory; "
                    "fix or remove that entry"
                )
            named.append((path, f"named by {PATH_VARIABLE}"))
    found: list[tuple[Path, str]] = []
    skipped = ""
    local = Path.cwd() / "plugins"
    if local.is_dir():
        if PROJECT_ROOT is not None and _same(local, PROJECT_ROOT / "plugins"):
            found.append((local, "the plugins directory of this instrlab checkout"))
        elif not any(_same(local, d) for d, _ in named):
            skipped = (f"skipped ./plugins ({local}): not the plugins directory of this "
                       f"instrlab checkout; to run its code, set {PATH_VARIABLE}=./plugins")
    for d, why in named:
        if not any(_same(d, u) for u, _ in found):
            found.append((d, why))
    return found, skipped


def plugin_dirs() -> list[Path]:
    """Plugin directories to load: a trusted ``./plugins``, then ``$INSTRLAB_PLUGINS``."""
    return [d for d, _ in _find_dirs()[0]]


def load_plugins(force: bool = False) -> None:
    """Import every plugin once per process (``force`` reloads directory plugins)."""
    if _loaded and not force:
        return
    _loaded.append(True)
    _loaded_from.clear()
    _skipped.clear()
    try:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(ep)
            _loaded_from.append(f"entry point {ep.name} ({ep.value})")
        dirs, skipped = _find_dirs()
        if skipped:
            _skipped.append(skipped)
        for directory, why in dirs:
            load_directory(directory)
            _loaded_from.append(f"directory {directory} ({why})")
    except BaseException:
        _loaded.clear()
        raise


def loaded_summary() -> list[str]:
    """One line per loaded entry point and plugin directory, and one for a skipped ./plugins."""
    load_plugins()
    lines = [f"plugins: {item}" for item in _loaded_from]
    if not any(item.startswith("entry point") for item in _loaded_from):
        lines.insert(0, f"plugins: no entry points in group {ENTRY_POINT_GROUP}")
    if not any(item.startswith("directory") for item in _loaded_from):
        lines.append("plugins: no plugin directory")
    return lines + [f"plugins: {line}" for line in _skipped]


def skipped_note() -> str:
    """``'; skipped ./plugins ...'`` when the last load left one out (for unknown names)."""
    return "".join(f"; {line}" for line in _skipped)


def _exited(where: str, exc: SystemExit, fix: str) -> PluginError:
    return PluginError(f"plugin {where} called sys.exit({exc.code!r}) while loading; "
                       f"plugins must register components, not exit: {fix}")


def _load_entry_point(ep) -> None:  # noqa: ANN001 - importlib.metadata.EntryPoint
    source = f"entry point {ep.name} ({ep.value})"
    fix = "fix or uninstall its package"
    with registering_from(source):
        try:
            obj = ep.load()
        except SystemExit as exc:
            raise _exited(source, exc, fix) from None
        except Exception as exc:
            raise PluginError(f"plugin {source} failed to import: {exc}") from exc
        if callable(obj):
            try:
                obj()
            except InstrlabError:
                raise
            except SystemExit as exc:
                raise _exited(source, exc, fix) from None
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
    fix = "fix it or move it out of the plugin directory"
    with registering_from(f"plugin file {path}"):
        try:
            spec.loader.exec_module(module)
        except InstrlabError as exc:
            del sys.modules[mod_name]
            raise PluginError(f"plugin {path}: {exc}") from exc
        except SystemExit as exc:
            del sys.modules[mod_name]
            raise _exited(str(path), exc, fix) from None
        except Exception as exc:
            del sys.modules[mod_name]
            raise PluginError(
                f"plugin {path} failed to import: {type(exc).__name__}: {exc}; {fix}"
            ) from exc
        except BaseException:  # KeyboardInterrupt: a later load starts this file afresh
            sys.modules.pop(mod_name, None)
            raise
