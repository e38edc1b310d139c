"""Procedural sample families: SoundFonts synthesised from instrument models, written by
instrlab and played by real FluidSynth like any installed soundfont."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument, InstrumentSet, get_instrument_set
from instrlab.scores import Note
from instrlab.synth import FluidSynthBackend
from instrlab.synth.procedural import family_file, procedural_presets
from instrlab.synth.provenance import compare_soundfonts
from instrlab.synth.sf2 import read_soundfont
from instrlab.synth.sf2_write import soundfont_bytes, write_soundfont
from instrlab.synth.soundfonts import find_soundfont

SR = 44100
SMALL = [("Violin", 40, (60, 66)), ("Acoustic Bass", 32, (40, 40))]
"""Two recipes, three samples: a bowed (looped) and a plucked (decaying) instrument."""


def small_font(folder: Path, seed: int) -> Path:
    return write_soundfont(folder / f"small-{seed}.sf2", f"small {seed}",
                           procedural_presets(SMALL, seed))


def rms_db(x: np.ndarray, start: float, stop: float) -> float:
    part = np.asarray(x[int(start * SR):int(stop * SR)], np.float64)
    return float(10 * np.log10(np.mean(part**2) + 1e-20))


def test_same_seed_same_bytes_and_another_seed_another_family() -> None:
    first = soundfont_bytes("t", procedural_presets(SMALL, 3))
    assert first == soundfont_bytes("t", procedural_presets(SMALL, 3))
    assert first != soundfont_bytes("t", procedural_presets(SMALL, 4))


def test_written_soundfont_reads_back_and_shares_no_recording(tmp_path: Path) -> None:
    path = small_font(tmp_path, 3)
    font = read_soundfont(path)
    violin = font.preset_samples(font.find_preset(0, 40))
    assert [s.original_pitch for s in violin] == [60, 66]
    assert all(s.start < s.start_loop < s.end_loop <= s.end for s in violin)
    assert [s.original_pitch for s in font.preset_samples(font.find_preset(0, 32))] == [40]
    two = InstrumentSet("two", (Instrument("violin", 40), Instrument("acoustic_bass", 32)))
    overlaps = compare_soundfonts([path, find_soundfont("FluidR3_GM.sf2")], two)
    assert [o.instrument for o in overlaps] == ["violin", "acoustic_bass"]
    assert all(o.overlap == 0 for o in overlaps)
    assert not list(tmp_path.glob(".*.tmp"))


def test_fluidsynth_sustains_bowed_notes_and_lets_plucked_ones_decay(tmp_path: Path) -> None:
    backend = FluidSynthBackend(soundfont=str(small_font(tmp_path, 3)))
    try:
        violin = backend.render_stem(Instrument("violin", 40), [Note(0, 63, 90, 0.1, 3.9)], 4.5)
        bass = backend.render_stem(Instrument("acoustic_bass", 32),
                                   [Note(0, 40, 90, 0.1, 3.9)], 4.5)
    finally:
        backend.close()
    # the loop holds the bowed note long after its 2.6 s sample, and the key-up ends it
    assert abs(rms_db(violin, 3.3, 3.8) - rms_db(violin, 0.5, 1.0)) < 6
    assert rms_db(violin, 4.35, 4.5) < rms_db(violin, 3.3, 3.8) - 20
    # a plucked string dies away while the key is still down
    assert rms_db(bass, 3.3, 3.8) < rms_db(bass, 0.2, 0.7) - 15
    assert rms_db(bass, 0.2, 0.7) > -40


def test_a_program_without_a_recipe_is_a_one_line_error() -> None:
    with pytest.raises(InstrlabError, match="no synthesis recipe for General MIDI program 58"):
        procedural_presets([("Tuba", 58, (40, 40))], 1)


@pytest.mark.parametrize("name", ["procedural:", "procedural:x", "procedural:-1",
                                  "procedural:1.5", "procedural:\u00b2"])
def test_a_bad_procedural_name_says_how_to_write_one(name: str) -> None:
    with pytest.raises(InstrlabError, match="procedural:SEED"):
        find_soundfont(name)


def test_a_family_seed_out_of_range_is_a_one_line_error() -> None:
    with pytest.raises(InstrlabError, match=r"seed must be in 0\.\.2147483647, got 2147483648"):
        find_soundfont("procedural:2147483648")


def test_the_command_line_names_a_bad_family_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "instrlab.cli", "generate", "--n-samples", "8",
                           "--extra-soundfont", "procedural:one", "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "procedural:SEED" in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()


def test_a_family_not_installed_is_built_into_the_cache_as_set_up_builds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole family (about 40 s): built on first use where set-up did not install it,
    reused after, every seed12 program present, byte-identical to set-up's copy."""
    installed = Path(sys.prefix, "share", "soundfonts", family_file(1))
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path / "no-prefix"))  # hide set-up's copy
    path = find_soundfont("procedural:1")
    assert path == (tmp_path / "cache" / "soundfonts" / family_file(1)).resolve()
    stamp = path.stat().st_mtime_ns
    assert find_soundfont("procedural:1") == path and path.stat().st_mtime_ns == stamp
    font = read_soundfont(path)
    for inst in get_instrument_set("seed12").instruments:
        assert font.find_preset(0, inst.program) is not None, inst.name
    if installed.is_file():
        assert installed.read_bytes() == path.read_bytes()
