"""The generic registry, the four registries, and instrument/instrument-set validation."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from instrlab.errors import InstrlabError, UnknownNameError
from instrlab.instruments import Instrument, InstrumentSet, get_instrument_set
from instrlab.registry import ALL, BUILTIN, Registry, code_digest, registering_from
from instrlab.reports import registry_table


@pytest.fixture
def reg() -> Registry:
    return Registry("widget")


def test_register_with_decorator_and_call(reg: Registry) -> None:
    @reg.register("alpha")
    def make_alpha(size: int = 1) -> tuple[str, int]:
        """Alpha widgets.

        More text that is not the description.
        """
        return ("alpha", size)

    def beta() -> str:
        return "beta"

    returned = reg.register("beta", beta)
    assert returned is beta
    assert make_alpha() == ("alpha", 1)  # the decorator returns the function unchanged

    assert reg.names() == ["alpha", "beta"]
    assert reg.get("alpha") is make_alpha
    assert reg.create("alpha", size=3) == ("alpha", 3)
    assert "beta" in reg and "gamma" not in reg
    entry = reg.entry("alpha")
    assert (entry.name, entry.description, entry.source) == ("alpha", "Alpha widgets.", BUILTIN)
    assert reg.entry("beta").description == ""
    assert [e.name for e in reg.entries()] == ["alpha", "beta"]


def test_register_without_name_uses_function_name(reg: Registry) -> None:
    @reg.register()
    def gizmo() -> None:
        """A gizmo."""

    assert reg.names() == ["gizmo"]


def test_duplicate_name_is_an_error_unless_override(reg: Registry) -> None:
    reg.register("alpha", lambda: 1)
    with registering_from("plugin file /x/y.py"):
        with pytest.raises(InstrlabError, match="'alpha' is already registered") as info:
            reg.register("alpha", lambda: 2)
    # the message says who holds the name and how to replace it
    assert "by built-in" in str(info.value) and "override=True" in str(info.value)
    assert reg.get("alpha")() == 1

    with registering_from("plugin file /x/y.py"):
        reg.register("alpha", lambda: 2, override=True)
    assert reg.get("alpha")() == 2
    assert reg.entry("alpha").source == "plugin file /x/y.py"


def test_unknown_name_lists_known_names_and_closest_match(reg: Registry) -> None:
    for name in ("logmel", "seed_image", "mfcc"):
        reg.register(name, lambda: None)
    with pytest.raises(UnknownNameError) as info:
        reg.get("logmell")
    msg = str(info.value)
    assert msg == ("unknown widget 'logmell'. Did you mean 'logmel'? "
                   "Known: logmel, mfcc, seed_image")
    assert isinstance(info.value, KeyError) and isinstance(info.value, InstrlabError)

    with pytest.raises(UnknownNameError) as info:
        reg.create("zzzzzz")
    assert "Did you mean" not in str(info.value)
    assert "Known: logmel, mfcc, seed_image" in str(info.value)


def test_unknown_name_in_empty_registry(reg: Registry) -> None:
    with pytest.raises(UnknownNameError, match="Known: none"):
        reg.get("x")


def test_unregister(reg: Registry) -> None:
    reg.register("alpha", lambda: 1)
    reg.unregister("alpha")
    reg.unregister("never-registered")  # no error
    assert reg.names() == []


def test_registering_from_nests_and_restores(reg: Registry) -> None:
    with registering_from("outer"):
        with registering_from("inner"):
            reg.register("a", lambda: 1)
        reg.register("b", lambda: 1)
        with pytest.raises(RuntimeError), registering_from("broken"):
            raise RuntimeError
        reg.register("c", lambda: 1)
    reg.register("d", lambda: 1)
    assert [reg.entry(n).source for n in "abcd"] == ["inner", "outer", "outer", BUILTIN]


def test_five_registries_hold_the_built_ins() -> None:
    assert set(ALL) == {"instruments", "synths", "features", "models", "scores"}
    assert "seed12" in ALL["instruments"]
    assert {"seed_random", "melody", "chords", "sustained", "ensemble"} <= set(
        ALL["scores"].names())
    assert "fluidsynth" in ALL["synths"]
    assert {"logmel", "seed_image"} <= set(ALL["features"].names())
    for name in ("seed12",):
        assert ALL["instruments"].entry(name).source == BUILTIN
    table = registry_table()
    assert table.row_count >= 4
    assert [c.header for c in table.columns] == ["registry", "name", "description", "source"]


def test_seed12_is_the_seed_set() -> None:
    iset = get_instrument_set("seed12")
    assert len(iset) == 12
    assert [i.program for i in iset.instruments] == [0, 24, 48, 72, 8, 32, 56, 80, 16, 40, 64,
                                                     88]
    assert iset.instruments[0].display_name == "Acoustic Grand Piano"
    assert all(i.pitch_range == (60, 72) and i.velocity_range == (50, 100) and i.bank == 0
               for i in iset.instruments)
    assert iset.to_dict()["instruments"][3]["name"] == "piccolo"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name", "program": 0}, "lower-case"),
        ({"name": "x", "program": 128}, "GM program 128 is out of range 0..127"),
        ({"name": "x", "program": -1}, "GM program -1 is out of range"),
        ({"name": "x", "program": 0, "bank": 16384}, "bank 16384"),
        ({"name": "x", "program": 0, "pitch_range": (60, 128)}, "pitch range 60..128"),
        ({"name": "x", "program": 0, "pitch_range": (72, 60)}, "pitch range 72..60"),
        ({"name": "x", "program": 0, "velocity_range": (0, 100)}, "velocity range 0..100"),
    ],
)
def test_instrument_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InstrlabError, match=message):
        Instrument(**kwargs)


def test_instrument_set_validation() -> None:
    with pytest.raises(InstrlabError, match="has no instruments"):
        InstrumentSet("empty", ())
    a = Instrument("a", 0)
    with pytest.raises(InstrlabError, match="repeats instrument names: a"):
        InstrumentSet("dup", (a, Instrument("a", 1)))
    assert Instrument("soft_pad", 89).display_name == "Soft Pad"


def test_builtins_register_on_first_use_and_keep_plugin_overrides() -> None:
    """A plugin may replace a built-in before the built-in module is imported."""
    reg = Registry("gadget", ("json",))  # any importable module

    def plugin_version() -> str:
        return "plugin"

    def builtin_version() -> str:
        return "builtin"

    with registering_from("plugin file x.py"):
        reg.register("thing", plugin_version, override=True)
    reg.register("thing", builtin_version)  # the late built-in registration is skipped
    assert reg.get("thing") is plugin_version
    with registering_from("plugin file y.py"):
        reg.register("other", plugin_version)
    with pytest.raises(InstrlabError, match="already registered \\(by plugin file y.py\\)"):
        reg.register("other", builtin_version)
    assert reg.entry("thing").source == "plugin file x.py" != BUILTIN


def test_reading_data_components_does_not_import_torch() -> None:
    """Dataset workers look up sets, synths and features: torch stays out of them."""
    import subprocess
    import sys

    code = ("import sys; from instrlab.registry import instrument_sets, synths, features; "
            "instrument_sets.get('seed12'); synths.get('fluidsynth'); features.get('logmel'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_code_digest_covers_a_plugin_package_and_only_a_loose_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package's digest changes when a helper module it imports changes; a loose
    module's digest is its own file's (sibling files are other plugins)."""
    pkg = tmp_path / "digestpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from digestpkg.helper import STEP\n\n"
                                     "def gen():\n    return STEP\n")
    (pkg / "helper.py").write_text("STEP = 1\n")
    (tmp_path / "loose.py").write_text("def gen():\n    return 1\n")
    (tmp_path / "sibling.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def digests() -> tuple[str | None, str | None]:
        for name in ("digestpkg", "digestpkg.helper", "loose"):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return (code_digest(importlib.import_module("digestpkg").gen),
                code_digest(importlib.import_module("loose").gen))

    package, loose = digests()
    assert package is not None and loose is not None
    assert digests() == (package, loose)
    (pkg / "helper.py").write_text("STEP = 2\n")
    (tmp_path / "sibling.py").write_text("X = 2\n")
    assert digests() == (digests()[0], loose) and digests()[0] != package
    (tmp_path / "loose.py").write_text("def gen():\n    return 2\n")
    assert digests()[1] != loose
    for name in ("digestpkg", "digestpkg.helper", "loose"):
        sys.modules.pop(name, None)
