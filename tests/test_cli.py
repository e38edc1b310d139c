"""The command line: bad input gives one line on stderr and writes nothing; the commands a
new user types work."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from instrlab.cli import main

PROJECT_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def instrlab_command() -> list[str]:
    script = Path(sys.executable).parent / "instrlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "instrlab.cli"]


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("INSTRLAB_PLUGINS", "INSTRLAB_SOUNDFONT")}
    full_env.update(COLUMNS="200", **env)
    return subprocess.run(instrlab_command() + args, cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("instrlab: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def random_soundfont(path: Path) -> Path:
    path.write_bytes(os.urandom(2048))
    return path


def corrupt_soundfont(path: Path) -> Path:
    body = b"sfbk" + b"LIST" + struct.pack("<I", 9999) + os.urandom(2048)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


BAD_TOML_PITCH = """name = "bad_pitch"
[[instruments]]
name = "x"
program = 1
pitch_range = [60, 140]
"""
BAD_TOML_PROGRAM = """name = "bad_program"
[[instruments]]
name = "x"
program = 128
"""
MISSING_PRESET = """name = "ghosts"
[[instruments]]
name = "ghost"
program = 0
bank = 5
"""

# (arguments, files to create in the working directory, fragments of the error line)
BAD_INPUT = {
    "n_samples_zero": (["--n-samples", "0"], {}, ["n_samples", "got 0"]),
    "n_samples_negative": (["--n-samples", "-5"], {}, ["n_samples", "got -5"]),
    "unknown_instruments": (["--instruments", "seed13"], {},
                            ["unknown instrument set 'seed13'", "Did you mean 'seed12'?",
                             "Known: seed12"]),
    "unknown_synth": (["--synth", "fluidsinth"], {},
                      ["unknown synth backend 'fluidsinth'", "Did you mean 'fluidsynth'?"]),
    "unknown_features": (["--features", "mfcc"], {},
                         ["unknown feature extractor 'mfcc'", "Known: logmel, seed_image"]),
    "max_instruments_too_large": (["--max-instruments", "13"], {},
                                  ["max_instruments (13) is larger than the instrument set "
                                   "(12 instruments)"]),
    "min_above_max": (["--min-instruments", "3", "--max-instruments", "2"], {},
                      ["max_instruments (2) must be >= min_instruments (3)"]),
    "min_instruments_zero": (["--min-instruments", "0"], {}, ["min_instruments must be >= 1"]),
    "workers_negative": (["--workers", "-1"], {}, ["workers must be >= 0"]),
    "keep_audio_negative": (["--keep-audio", "-1"], {}, ["keep_audio must be >= 0"]),
    "clip_too_short": (["--clip-seconds", "0.1"], {}, ["clip_seconds"]),
    "missing_soundfont": (["--soundfont", "/no/such/FluidR3.sf2"], {},
                          ["soundfont '/no/such/FluidR3.sf2' not found",
                           "apt-get install fluid-soundfont-gm"]),
    "random_bytes_soundfont": (["--soundfont", "random.sf2"], {"random.sf2": random_soundfont},
                               ["is not a valid SoundFont"]),
    "corrupt_soundfont": (["--soundfont", "corrupt.sf2"], {"corrupt.sf2": corrupt_soundfont},
                          ["FluidSynth could not load soundfont", "corrupt"]),
    "toml_pitch_out_of_range": (["--instruments", "bad_pitch"],
                                {"plugins/bad.toml": BAD_TOML_PITCH},
                                ["plugins/bad.toml", "pitch range 60..140"]),
    "toml_program_out_of_range": (["--instruments", "bad_program"],
                                  {"plugins/bad.toml": BAD_TOML_PROGRAM},
                                  ["plugins/bad.toml", "GM program 128 is out of range 0..127"]),
    "program_missing_from_soundfont": (["--instruments", "ghosts", "--max-instruments", "1"],
                                       {"plugins/ghosts.toml": MISSING_PRESET},
                                       ["has no preset for 'ghost' (bank 5 program 0)"]),
    "broken_plugin": ([], {"plugins/broken.py": "import numpy\nraise ValueError('half done')\n"},
                      ["plugins/broken.py failed to import", "ValueError: half done"]),
    "malformed_toml": ([], {"plugins/set.toml": "name = \"x\"\n[[instruments]\n"},
                       ["plugins/set.toml: not a readable TOML file"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_writes_nothing(case: str, isolated: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    args, files, fragments = BAD_INPUT[case]
    for name, content in files.items():
        path = isolated / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_text(content)
    out = isolated / "out"
    code = main(["generate", "--n-samples", "8", *args, "--out", str(out), "--quiet"])
    captured = capfd.readouterr()
    assert code != 0
    assert captured.out == ""
    assert_one_line_error(captured.err, *fragments)
    assert not out.exists() and not (isolated / "out.partial").exists()
    assert not (isolated / "cache").exists()


def test_instrlab_plugins_naming_a_missing_directory(isolated: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("INSTRLAB_PLUGINS", str(isolated / "nowhere"))
    assert main(["list"]) != 0
    assert_one_line_error(capfd.readouterr().err, "INSTRLAB_PLUGINS names", "nowhere")


def test_broken_plugin_breaks_list_with_one_line(tmp_path: Path) -> None:
    """Through the installed console script: exit code and stderr as a user sees them."""
    write(tmp_path / "plugins" / "broken.py", "raise RuntimeError('boom')\n")
    result = run_cli(["list"], cwd=tmp_path, INSTRLAB_CACHE=str(tmp_path / "cache"),
                     INSTRLAB_PLUGINS="./plugins")
    assert result.returncode == 2 and result.stdout == ""
    assert_one_line_error(result.stderr, f"plugin {tmp_path / 'plugins' / 'broken.py'}",
                          "RuntimeError: boom")


def test_corrupt_soundfont_through_the_console_script(tmp_path: Path) -> None:
    """FluidSynth's own log lines (C code, fd 2) do not reach the user's terminal."""
    corrupt_soundfont(tmp_path / "bad.sf2")
    result = run_cli(["generate", "--n-samples", "4", "--soundfont", "bad.sf2", "--out", "ds"],
                     cwd=tmp_path, INSTRLAB_CACHE=str(tmp_path / "cache"))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "FluidSynth could not load soundfont")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.sf2"]


def test_generate_then_list_as_a_new_user(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_cli(["generate", "--n-samples", "16"], cwd=tmp_path, INSTRLAB_CACHE=str(cache))
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip().splitlines()[-1])
    assert path.parent == cache / "datasets" and (path / "COMPLETE").is_file()
    assert "dataset statistics (16 samples)" in first.stderr
    assert "acoustic_grand_piano" in first.stderr and "clips with 1 instrument" in first.stderr

    listing = run_cli(["list"], cwd=tmp_path, INSTRLAB_CACHE=str(cache))
    assert listing.returncode == 0, listing.stderr
    for name in ("seed12", "fluidsynth", "logmel", "seed_image", "built-in"):
        assert name in listing.stdout

    again = run_cli(["generate", "--n-samples", "16", "--quiet"], cwd=tmp_path,
                    INSTRLAB_CACHE=str(cache))
    assert again.returncode == 0 and again.stdout.strip() == str(path)  # reused


def test_example_plugins_from_the_command_line(tmp_path: Path) -> None:
    env = {"INSTRLAB_CACHE": str(tmp_path / "cache"), "INSTRLAB_PLUGINS": str(PROJECT_PLUGINS)}
    listing = run_cli(["list", "instruments"], cwd=tmp_path, **env)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[2].strip(): line for line in listing.stdout.splitlines()
            if line.count("│") >= 4}
    assert f"plugin file {PROJECT_PLUGINS / 'brass.toml'}" in rows["brass6"]
    assert f"plugin file {PROJECT_PLUGINS / 'gm_families.py'}" in rows["gm16"]
    assert "built-in" in rows["seed12"]

    out = tmp_path / "x"
    result = run_cli(["generate", "--instruments", "brass6", "--n-samples", "16", "--out",
                      str(out), "--quiet"], cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    from instrlab.dataset import open_dataset

    ds = open_dataset(out)
    assert ds.instrument_names == ["trumpet", "trombone", "tuba", "french_horn",
                                   "brass_section", "synth_brass_1"]
    assert ds.features.shape == (16, 128, 431)
