"""Sample provenance of the installed soundfonts: the SF2/SF3 reader, overlaps, families, CLI.

Everything reads the real Debian soundfonts; a tiny SoundFont written here stands in for
a soundfont that lacks a program.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from instrlab.cli import main
from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument, InstrumentSet, get_instrument_set
from instrlab.synth import provenance, sf2
from instrlab.synth.provenance import (
    compare,
    compare_soundfonts,
    normalize_name,
    preset_samples,
    sample_families,
)
from instrlab.synth.soundfonts import find_soundfont

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEED12 = get_instrument_set("seed12")
PACKAGES = {"FluidR3_GM.sf2": "fluid-soundfont-gm",
            "MuseScore_General.sf3": "musescore-general-soundfont-small",
            "TimGM6mb.sf2": "timgm6mb-soundfont", "sf_GMbank.sf2": "csound-soundfont"}
NEW_IN_MUSESCORE = {"acoustic_grand_piano", "square_wave_lead", "new_age_pad"}
NOT_SHARED_TIM_CSOUND = {"string_ensemble_1", "trumpet", "soprano_sax"}


def installed(name: str) -> Path:
    try:
        return find_soundfont(name)
    except InstrlabError:
        pytest.skip(f"{name} is not installed (apt-get install {PACKAGES[name]})")


@pytest.fixture(scope="module")
def fonts() -> dict[str, Path]:
    return {name: installed(name) for name in PACKAGES}


def overlaps_of(paths: list[Path]) -> dict[str, provenance.Overlap]:
    """Overlaps of the first two soundfonts, by instrument."""
    return {o.instrument: o for o in compare_soundfonts(paths[:2], SEED12)}


# --- a tiny SoundFont writer: one 64-point sample, one instrument, given presets ----------

def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def write_sf2(path: Path, presets: list[tuple[str, int, int]]) -> bytes:
    """A valid SF2 file whose presets (name, bank, program) all play one sample; returns the
    sample's 16-bit data."""
    data = (np.sin(np.arange(64) / 4) * 8000).astype("<i2").tobytes()
    n = len(presets)
    phdr = b"".join(struct.pack("<20sHHHIII", name.encode(), program, bank, i, 0, 0, 0)
                    for i, (name, bank, program) in enumerate(presets))
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", phdr + struct.pack("<20sHHHIII", b"EOP", 0, 0, n, 0, 0, 0)),
        _chunk(b"pbag", b"".join(struct.pack("<HH", i, 0) for i in range(n + 1))),
        _chunk(b"pmod", bytes(10)),
        _chunk(b"pgen", struct.pack("<HH", 41, 0) * n + bytes(4)),
        _chunk(b"inst", struct.pack("<20sH", b"Tiny", 0) + struct.pack("<20sH", b"EOI", 1)),
        _chunk(b"ibag", struct.pack("<HHHH", 0, 0, 2, 0)),
        _chunk(b"imod", bytes(10)),
        _chunk(b"igen", struct.pack("<HHHH", 58, 67, 53, 0) + bytes(4)),
        _chunk(b"shdr", struct.pack("<20sIIIIIBbHH", b"Tiny Sine", 0, 64, 8, 56, 44100, 60, 0,
                                    0, 1) + bytes(46)),
    )
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"INAM", b"Tiny\0\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", data + bytes(92)))
    path.write_bytes(_chunk(b"RIFF", b"sfbk" + info + sdta + pdta))
    return data


# --- the reader -----------------------------------------------------------------------------

def test_reader_lists_presets_and_follows_zones_to_samples(fonts: dict[str, Path]) -> None:
    fluid = sf2.read_soundfont(fonts["FluidR3_GM.sf2"])
    assert fluid.name == "Fluid R3 GM"
    assert {(p.bank, p.program) for p in fluid.presets} >= {(0, p) for p in range(128)}
    piano = fluid.find_preset(0, 0)
    assert (piano.name, piano.bank, piano.program) == ("Yamaha Grand Piano", 0, 0)
    samples = fluid.preset_samples(piano)
    assert len(samples) == 40 and all(not s.compressed for s in samples)
    assert all(0 <= s.start < s.end <= fluid.smpl_size // 2 for s in samples)
    guitar = {z.sample.name: z.root_key for z in fluid.preset_zones(fluid.find_preset(0, 24))}
    assert guitar["Nylon E3"] == 40  # overridingRootKey, not the header's 60

    muse = sf2.read_soundfont(fonts["MuseScore_General.sf3"])  # odd chunk without pad byte
    trumpet = muse.preset_samples(muse.find_preset(0, 56))
    assert [s.name for s in trumpet][0] == "Trumpet E3"
    assert all(s.compressed for s in trumpet)


def test_bank_fallback_like_fluidsynth(fonts: dict[str, Path]) -> None:
    fluid = sf2.read_soundfont(fonts["FluidR3_GM.sf2"])
    assert fluid.find_preset(8, 28).bank == 8  # an existing variation bank is used as is
    assert fluid.find_preset(5, 0) == fluid.find_preset(0, 0)  # missing bank -> bank 0
    banked = InstrumentSet("banked", (Instrument("piano_bank5", 0, bank=5),))
    result = compare_soundfonts([fonts["FluidR3_GM.sf2"]] * 2, banked)
    assert result[0].shared and result[0].overlap == 1.0


def test_parsing_and_hashing_never_load_the_sample_chunk(fonts: dict[str, Path]) -> None:
    sf2._cached.cache_clear()
    provenance._preset_samples.cache_clear()
    tracemalloc.start()
    try:
        fluid = sf2.read_soundfont(fonts["FluidR3_GM.sf2"])
        preset_samples(fonts["FluidR3_GM.sf2"], SEED12.instruments[0])  # 40 piano samples
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fluid.smpl_size > 100_000_000
    assert peak < 16_000_000


# --- overlaps on the installed soundfonts -------------------------------------------------

def test_musescore_reuses_fluidr3_except_piano_square_lead_and_pad(
        fonts: dict[str, Path]) -> None:
    by = overlaps_of([fonts["FluidR3_GM.sf2"], fonts["MuseScore_General.sf3"]])
    assert {i for i, o in by.items() if not o.shared} == NEW_IN_MUSESCORE
    for name, o in by.items():
        assert o.overlap == (0.0 if name in NEW_IN_MUSESCORE else 1.0), name
    # the readme credits a new trumpet, but its samples are FluidR3's, renamed: only the
    # loop points (to the point) tell, as they do for "Soprano A4(L)" -> "Sax-Soprano A4"
    assert by["trumpet"].by == ("loop",) and by["soprano_sax"].by == ("loop",)
    assert (by["violin"].found_a, by["violin"].size_a) == (28, 28)  # stereo pairs -> mono
    assert (by["violin"].found_b, by["violin"].size_b) == (14, 14)


def test_musescore_trumpet_decodes_to_fluidr3_trumpet(fonts: dict[str, Path]) -> None:
    soundfile = pytest.importorskip("soundfile")
    fluid = sf2.read_soundfont(fonts["FluidR3_GM.sf2"])
    muse = sf2.read_soundfont(fonts["MuseScore_General.sf3"])
    ours = {s.name: s for s in fluid.preset_samples(fluid.find_preset(0, 56))}
    theirs = {s.name: s for s in muse.preset_samples(muse.find_preset(0, 56))}
    for renamed, name in (("Trumpet E3", "tp_e3"), ("Trumpet C6", "tp_c6")):
        coded = sf2.read_sample_bytes(muse, theirs[renamed])
        decoded, _ = soundfile.read(io.BytesIO(coded))
        original = np.frombuffer(sf2.read_sample_bytes(fluid, ours[name]), "<i2")
        assert len(decoded) == len(original)
        assert np.corrcoef(decoded, original)[0, 1] > 0.99


def test_fluidr3_and_musescore_share_nothing_with_timgm6mb_or_csound(
        fonts: dict[str, Path]) -> None:
    for a in ("FluidR3_GM.sf2", "MuseScore_General.sf3"):
        for b in ("TimGM6mb.sf2", "sf_GMbank.sf2"):
            by = overlaps_of([fonts[a], fonts[b]])
            assert all(o.overlap == 0.0 and not o.shared for o in by.values()), (a, b)


def test_csound_bank_mostly_shares_timgm6mb_samples(fonts: dict[str, Path]) -> None:
    by = overlaps_of([fonts["TimGM6mb.sf2"], fonts["sf_GMbank.sf2"]])
    assert {i for i, o in by.items() if not o.shared} == NOT_SHARED_TIM_CSOUND
    assert "data" in by["celesta"].by
    # TimGM6mb's piano is partly csound's, downsampled to 22.05 kHz: same names and roots
    piano = by["acoustic_grand_piano"]
    assert piano.by == ("name",) and (piano.found_a, piano.found_b) == (5, 5)


def test_same_file_shares_everything(fonts: dict[str, Path]) -> None:
    for name, kind in (("FluidR3_GM.sf2", "data"), ("MuseScore_General.sf3", "loop")):
        by = overlaps_of([fonts[name], fonts[name]])
        assert all(o.shared and o.overlap == 1.0 and kind in o.by for o in by.values()), name


def test_sample_families_are_per_instrument(fonts: dict[str, Path]) -> None:
    paths = [fonts[n] for n in PACKAGES]
    families = sample_families(compare_soundfonts(paths, SEED12, labels=list(PACKAGES)))
    fluid, muse, tim, csound = PACKAGES
    as_sets = {i: sorted(sorted(f) for f in fams) for i, fams in families.items()}
    assert as_sets["celesta"] == [sorted([fluid, muse]), sorted([tim, csound])]
    assert as_sets["new_age_pad"] == [[fluid], [muse], sorted([tim, csound])]
    assert as_sets["trumpet"] == [sorted([fluid, muse]), [tim], [csound]]


def test_names_are_normalized() -> None:
    assert normalize_name("Celesta C 4(L)") == normalize_name("Celesta C4") == "celestac4"
    assert normalize_name("Strings G2L") == normalize_name("Strings G2 R") == "stringsg2"
    assert normalize_name("Str1C4 L") == "str1c4"
    assert normalize_name("Bell") == "bell"


# --- a tiny written soundfont -------------------------------------------------------------

def test_tiny_soundfont_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tiny.sf2"
    data = write_sf2(path, [("Tiny Piano", 0, 0)])
    sf = sf2.read_soundfont(path)
    assert [(p.name, p.bank, p.program) for p in sf.presets] == [("Tiny Piano", 0, 0)]
    (zone,) = sf.preset_zones(sf.find_preset(3, 0))
    assert (zone.sample.name, zone.root_key) == ("Tiny Sine", 67)
    assert sf2.read_sample_bytes(sf, zone.sample) == data
    ident = preset_samples(path, Instrument("piano", 0))
    assert ("data", hashlib.sha256(data).hexdigest()[:16]) in ident.samples[0].keys
    assert ("name", "tinysine@67") in ident.samples[0].keys
    assert compare(ident, ident).shared


def test_missing_program_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.sf2"
    write_sf2(path, [("Tiny Piano", 0, 0)])
    with pytest.raises(InstrlabError) as err:
        compare_soundfonts([path, path], SEED12)
    text = str(err.value)
    assert "tiny.sf2" in text and "program 24" in text and "nylon_acoustic_guitar" in text
    assert "\n" not in text


# --- the command line -----------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "instrlab.cli", "soundfonts", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_table_and_json(fonts: dict[str, Path]) -> None:
    done = run_cli("FluidR3_GM.sf2", "MuseScore_General.sf3", "--instruments", "seed12")
    assert done.returncode == 0, done.stderr
    assert "Yamaha Grand Piano" in done.stdout and "Strings Fast" in done.stdout
    assert ("MuseScore_General.sf3 shares samples with FluidR3_GM.sf2 for 9 of 12 "
            "instruments: nylon_acoustic_guitar") in done.stdout

    done = run_cli(str(fonts["TimGM6mb.sf2"]), "sf_GMbank.sf2", "FluidR3_GM.sf2", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [sf["label"] for sf in data["soundfonts"]] == ["TimGM6mb.sf2", "sf_GMbank.sf2",
                                                          "FluidR3_GM.sf2"]
    assert len(data["pairs"]) == 3 * 12
    summary = {(s["a"], s["b"]): s["shared"] for s in data["summary"]}
    assert summary == {("TimGM6mb.sf2", "sf_GMbank.sf2"): 9, ("TimGM6mb.sf2", "FluidR3_GM.sf2"): 0,
                       ("sf_GMbank.sf2", "FluidR3_GM.sf2"): 0}
    assert data["instruments"][0]["presets"]["TimGM6mb.sf2"]["preset"] == "Piano 1"
    assert len(data["families"]["celesta"]) == 2


def test_cli_errors_are_one_line_with_exit_code_2(
        tmp_path: Path, fonts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    done = run_cli("FluidR3_GM.sf2", str(tmp_path / "missing.sf2"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "missing.sf2" in done.stderr

    noise = tmp_path / "noise.sf2"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.sf2"
    with open(fonts["TimGM6mb.sf2"], "rb") as fh:
        truncated.write_bytes(fh.read(100_000))
    tiny = tmp_path / "tiny.sf2"
    write_sf2(tiny, [("Tiny Piano", 0, 0)])
    expected = {noise: "noise.sf2 is corrupt or not a SoundFont",
                truncated: "truncated.sf2 is corrupt or not a SoundFont",
                tiny: "tiny.sf2 has no preset for program 24"}
    for path, message in expected.items():
        assert main(["soundfonts", "FluidR3_GM.sf2", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("instrlab: error: ") and err.count("\n") == 1, err
        assert message in err

    assert main(["soundfonts", "FluidR3_GM.sf2"]) == 2
    assert "at least two" in capsys.readouterr().err
