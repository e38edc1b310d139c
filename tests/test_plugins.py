"""Plugin discovery: entry points, plugin directories, TOML sets, and broken plugins.

Each test runs in the ``isolated`` fixture: an empty working directory, registries with
only the built-ins, and plugins loaded afresh on the next lookup.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from instrlab import plugins
from instrlab.errors import InstrlabError, PluginError
from instrlab.instruments import get_instrument_set
from instrlab.registry import features, instrument_sets
from instrlab.reports import registry_table
from instrlab.scores import Note, ScoreConfig, generate_score
from instrlab.synth.mixing import active_rms_db

PROJECT_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"

TOML_SET = """
name = "duo"
description = "Two instruments"

[[instruments]]
name = "flute"
program = 73
pitch_range = [60, 84]

[[instruments]]
name = "cello"
program = 42
bank = 0
pitch_range = [36, 60]
velocity_range = [60, 90]
label = "Cello (GM 43)"
"""

PY_PLUGIN = '''
"""A plugin that registers a feature extractor and an instrument set."""
import numpy as np

from instrlab.instruments import Instrument, InstrumentSet
from instrlab.registry import features, instrument_sets


class Peak:
    name = "peak"
    shape = (1,)

    def __init__(self, sample_rate=44100, clip_seconds=5.0):
        self.sample_rate = sample_rate
        self.n_samples = int(round(sample_rate * clip_seconds))

    def __call__(self, audio):
        return np.array([np.abs(audio).max()], np.float32)

    def params(self):
        return {"name": self.name}


@features.register("peak")
def peak(**params):
    """Peak amplitude (a one-number feature)."""
    return Peak(**params)


@instrument_sets.register("solo_organ")
def solo_organ():
    """Just an organ."""
    return InstrumentSet("solo_organ", (Instrument("organ", 19),))
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def make_distribution(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info + modules) that importlib.metadata finds."""
    info = site / f"{dist}-0.1.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    write(info / "entry_points.txt", entry_points)
    for name, code in modules.items():
        write(site / f"{name}.py", code)


def table_rows(kind: str) -> dict[str, str]:
    """name -> source, as ``instrlab list`` shows it."""
    table = registry_table(kind)
    names = list(table.columns[1].cells)
    sources = list(table.columns[3].cells)
    return dict(zip(names, sources))


# --- entry points --------------------------------------------------------------------------

def test_entry_point_plugins_are_loaded(isolated: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    make_distribution(
        site, "instrlab_test_dist",
        "[instrlab.plugins]\n"
        "ep_call = instrlab_test_ep_call:register\n"
        "ep_module = instrlab_test_ep_module\n",
        {
            "instrlab_test_ep_call": """
                from instrlab.instruments import Instrument, InstrumentSet
                from instrlab.registry import instrument_sets

                def register():
                    instrument_sets.register(
                        "ep_set", lambda: InstrumentSet("ep_set", (Instrument("harp", 46),)))
            """,
            "instrlab_test_ep_module": """
                from instrlab.registry import synths
                from instrlab.synth.fluidsynth_backend import FluidSynthBackend

                @synths.register("fluidsynth_wet")
                def wet(**params):
                    '''FluidSynth with reverb and chorus on.'''
                    return FluidSynthBackend(**{**params, "reverb": True, "chorus": True})
            """,
        },
    )
    monkeypatch.syspath_prepend(str(site))

    iset = get_instrument_set("ep_set")
    assert iset.names == ["harp"]
    assert instrument_sets.entry("ep_set").source == (
        "entry point ep_call (instrlab_test_ep_call:register)")
    assert table_rows("synths")["fluidsynth_wet"] == (
        "entry point ep_module (instrlab_test_ep_module)")
    assert table_rows("instruments")["seed12"] == "built-in"


def test_entry_point_that_fails_to_import_is_reported(isolated: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    make_distribution(site, "instrlab_test_bad", "[instrlab.plugins]\nbad = instrlab_test_bad\n",
                      {"instrlab_test_bad": "raise ImportError('needs libfoo')\n"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"plugin entry point bad \(instrlab_test_bad\) failed "
                                          r"to import: needs libfoo"):
        instrument_sets.names()
    assert not plugins._loaded  # a later lookup tries again instead of half-loading


def test_entry_point_callable_that_raises_is_reported(isolated: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    make_distribution(site, "instrlab_test_boom",
                      "[instrlab.plugins]\nboom = instrlab_test_boom:register\n",
                      {"instrlab_test_boom": "def register():\n    1 / 0\n"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"entry point boom .* failed: division by zero"):
        instrument_sets.get("seed12")


# --- plugin directories ----------------------------------------------------------------------

def test_directory_plugins_from_instrlab_plugins(isolated: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    one = tmp_path / "one"
    two = tmp_path / "two"
    py = write(one / "extras.py", PY_PLUGIN)
    toml = write(two / "duo.toml", TOML_SET)
    write(two / "_private.py", "raise RuntimeError('files starting with _ are skipped')\n")
    write(two / "notes.txt", "not a plugin")
    monkeypatch.setenv("INSTRLAB_PLUGINS", f"{one}{os.pathsep}{two}")

    assert set(instrument_sets.names()) == {"seed12", "solo_organ", "duo"}
    assert instrument_sets.entry("solo_organ").source == f"plugin file {py}"
    assert features.entry("peak").description == "Peak amplitude (a one-number feature)."
    assert features.entry("peak").source == f"plugin file {py}"
    assert instrument_sets.entry("duo").source == f"plugin file {toml}"
    assert instrument_sets.entry("duo").description == "Two instruments"

    duo = get_instrument_set("duo")
    flute, cello = duo.instruments
    assert (flute.program, flute.bank, flute.pitch_range, flute.velocity_range) == (
        73, 0, (60, 84), (50, 100))
    assert (cello.program, cello.pitch_range, cello.velocity_range) == (42, (36, 60), (60, 90))
    assert cello.display_name == "Cello (GM 43)"

    extractor = features.create("peak", sample_rate=44100, clip_seconds=1.0)
    assert extractor(np.array([0.1, -0.5], np.float32)).tolist() == [0.5]


def test_plugins_in_the_working_directory(isolated: Path) -> None:
    write(isolated / "plugins" / "duo.toml", TOML_SET)
    assert "duo" in instrument_sets
    assert table_rows("instruments")["duo"] == f"plugin file {isolated / 'plugins' / 'duo.toml'}"


def test_same_directory_twice_loads_once(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "plugins" / "duo.toml", TOML_SET)
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(isolated / "plugins"))
    assert plugins.plugin_dirs() == [isolated / "plugins"]
    assert "duo" in instrument_sets


def test_instrlab_plugins_naming_a_missing_directory(isolated: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(missing))
    with pytest.raises(PluginError, match=f"INSTRLAB_PLUGINS names {missing}, which is not a "
                                          "directory"):
        instrument_sets.names()


def test_plugin_that_raises_on_import(isolated: Path) -> None:
    path = write(isolated / "plugins" / "broken.py", "x = 1\nraise RuntimeError('boom')\n")
    with pytest.raises(PluginError) as info:
        get_instrument_set("seed12")
    msg = str(info.value)
    assert str(path) in msg and "RuntimeError: boom" in msg
    assert "\n" not in msg
    assert not plugins._loaded


def test_plugin_with_syntax_error(isolated: Path) -> None:
    path = write(isolated / "plugins" / "typo.py", "def f(:\n    pass\n")
    with pytest.raises(PluginError, match=f"plugin {path} failed to import: SyntaxError"):
        instrument_sets.names()


def test_plugin_registering_a_taken_name(isolated: Path) -> None:
    path = write(isolated / "plugins" / "clash.py", """
        from instrlab.registry import instrument_sets
        instrument_sets.register("seed12", lambda: None)
    """)
    with pytest.raises(PluginError, match=f"plugin {path}: instrument set 'seed12' is already "
                                          r"registered \(by built-in\)"):
        instrument_sets.names()


def test_plugin_may_override_on_purpose(isolated: Path) -> None:
    path = write(isolated / "plugins" / "mine.py", """
        from instrlab.instruments import Instrument, InstrumentSet
        from instrlab.registry import instrument_sets

        @instrument_sets.register("seed12", override=True)
        def my_seed12():
            '''seed12, replaced.'''
            return InstrumentSet("seed12", (Instrument("piano", 0), Instrument("bass", 32)))
    """)
    assert get_instrument_set("seed12").names == ["piano", "bass"]
    assert instrument_sets.entry("seed12").source == f"plugin file {path}"


def test_toml_set_may_override_on_purpose(isolated: Path) -> None:
    write(isolated / "plugins" / "a.toml", TOML_SET)
    write(isolated / "plugins" / "b.toml", TOML_SET.replace('"Two instruments"', '"Again"')
          .replace('name = "duo"', 'name = "duo"\noverride = true'))
    assert instrument_sets.entry("duo").description == "Again"


def test_toml_name_clash_is_an_error(isolated: Path) -> None:
    write(isolated / "plugins" / "a.toml", TOML_SET)
    write(isolated / "plugins" / "b.toml", TOML_SET)
    with pytest.raises(InstrlabError, match=r"'duo' is already registered \(by plugin file "
                                            r".*a\.toml\)"):
        instrument_sets.names()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name = \"x\"\n[[instruments]\nname = \"a\"\n", "not a readable TOML file"),
        ("name = \"x\"\n", "malformed instrument set"),
        ("[[instruments]]\nname = \"a\"\nprogram = 1\n", "malformed instrument set"),
        ("name = \"x\"\ninstruments = 3\n", "'instruments' must be an array of tables"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\n", "malformed instrument set"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 1\ncolour = \"red\"\n",
         "unknown instrument keys"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 1\npitch_range = [1, 2, 3]\n",
         r"pitch_range must be \[low, high\]"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 1\npitch_range = \"low\"\n",
         "malformed instrument set"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 200\n",
         "GM program 200 is out of range 0..127"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 1\npitch_range = [50, 130]\n",
         "pitch range 50..130"),
        ("name = \"x\"\n[[instruments]]\nname = \"a\"\nprogram = 1\n"
         "[[instruments]]\nname = \"a\"\nprogram = 2\n", "repeats instrument names: a"),
    ],
)
def test_malformed_toml_is_reported_with_path_and_reason(isolated: Path, text: str,
                                                         reason: str) -> None:
    path = write(isolated / "plugins" / "bad.toml", text)
    with pytest.raises(PluginError, match=reason) as info:
        instrument_sets.names()
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


# --- the project's example plugins --------------------------------------------------------

def test_project_example_plugins(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(PROJECT_PLUGINS))
    rows = table_rows("instruments")
    assert rows["brass6"] == f"plugin file {PROJECT_PLUGINS / 'brass.toml'}"
    assert rows["gm16"] == f"plugin file {PROJECT_PLUGINS / 'gm_families.py'}"

    brass = get_instrument_set("brass6")
    assert [i.program for i in brass.instruments] == [56, 57, 58, 60, 61, 62]
    gm16 = get_instrument_set("gm16")
    assert [i.program for i in gm16.instruments] == list(range(0, 128, 8))
    assert len(set(gm16.names)) == 16
    assert table_rows("scores")["scales"] == f"plugin file {PROJECT_PLUGINS / 'scales.py'}"


def test_project_example_score_generator(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                         seed12) -> None:  # noqa: ANN001
    """The example generator plays scale runs inside each instrument's range, every drawn
    instrument sounding, the same notes for the same seed."""
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(PROJECT_PLUGINS))
    cfg = ScoreConfig(generators=(("scales", 1.0),), register_share=0.5)
    for i in range(50):
        score = generate_score(seed12, cfg, 0, i)
        assert score == generate_score(seed12, cfg, 0, i)
        for inst in score.instruments:
            ns = score.notes_of(inst)
            assert len(ns) >= 2
            spec = seed12.instruments[inst]
            assert all(spec.wide_range[0] <= n.pitch <= spec.wide_range[1] for n in ns)
            steps = {abs(b.pitch - a.pitch) for a, b in zip(ns, ns[1:])}
            assert steps <= {0, 1, 2}, steps


@pytest.mark.parametrize("set_name", ["brass6", "gm16"])
def test_project_example_sets_sound_in_fluidr3(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                               synth, set_name: str) -> None:  # noqa: ANN001
    """Every instrument of the example sets exists in FluidR3_GM and sounds over its range."""
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(PROJECT_PLUGINS))
    iset = get_instrument_set(set_name)
    synth.check_instruments(iset.instruments)
    for k, inst in enumerate(iset.instruments):
        for pitch in inst.pitch_range:
            stem = synth.render_stem(inst, [Note(k, pitch, 60, 0.1, 0.8)], 1.0)
            assert active_rms_db(stem) > -75, (inst.name, pitch)


def test_a_plugins_datasets_are_renamed_when_its_code_changes(isolated: Path) -> None:
    """Built-in generators rename their datasets through instrlab's version; a plugin's
    datasets through a digest of its file, so edited notes never reuse stale clips."""
    import json

    from test_cli import run_cli

    mine = isolated / "mine"
    mine.mkdir()
    plugin = mine / "scales.py"
    plugin.write_text((PROJECT_PLUGINS / "scales.py").read_text())
    args = ["generate", "--n-samples", "2", "--workers", "1", "--score-generators", "scales=1"]

    def build() -> Path:
        proc = run_cli(args, isolated, INSTRLAB_PLUGINS=str(mine))
        assert proc.returncode == 0, proc.stderr
        return Path(proc.stdout.split()[-1])

    first = build()
    identity = json.loads((first / "config.json").read_text())["identity"]
    assert list(identity["plugin_code"]) == ["score generator scales"]
    assert build() == first  # the same code: the dataset is reused
    plugin.write_text(plugin.read_text().replace("step = float(req.rng.uniform(0.15, 0.6))",
                                                 "step = float(req.rng.uniform(0.2, 0.6))"))
    edited = build()
    assert edited != first and (first / "config.json").exists()
    plain = run_cli(["generate", "--n-samples", "2", "--workers", "1"], isolated)
    assert "plugin_code" not in json.loads(
        (Path(plain.stdout.split()[-1]) / "config.json").read_text())["identity"]
