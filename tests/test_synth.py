"""Real FluidSynth rendering (audibility, timing, determinism, no bleed, bad soundfonts)
and the loudness normalisation of stems in the mix."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from instrlab.errors import InstrlabError, UnknownNameError
from instrlab.instruments import Instrument
from instrlab.scores import Note, ScoreConfig, generate_score
from instrlab.synth import FluidSynthBackend, get_synth
from instrlab.synth.mixing import MixConfig, active_rms_db, mix_stems
from instrlab.synth.soundfonts import find_soundfont

SR = 44100
SF3 = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")


def rms_db(x: np.ndarray) -> float:
    power = float(np.mean(np.asarray(x, np.float64) ** 2))
    return 10 * np.log10(power) if power > 0 else float("-inf")


def test_registered_backend_and_identity(synth) -> None:  # noqa: ANN001
    assert isinstance(get_synth("fluidsynth"), FluidSynthBackend)
    with pytest.raises(UnknownNameError, match="Did you mean 'fluidsynth'"):
        get_synth("fluidsynt")
    ident = synth.identity()
    assert ident["soundfont"] == "FluidR3_GM.sf2"
    assert len(ident["soundfont_sha256"]) == 64
    assert (ident["sample_rate"], ident["reverb"], ident["chorus"]) == (44100, False, False)


def test_labelled_instruments_are_audible_in_their_stems(synth, seed12) -> None:  # noqa: ANN001
    cfg = ScoreConfig()
    seen = set()
    for index in range(24):
        score = generate_score(seed12, cfg, 5, index)
        for inst in score.instruments:
            notes = score.notes_of(inst)
            stem = synth.render_stem(seed12.instruments[inst], notes, score.clip_seconds)
            assert stem.dtype == np.float32 and stem.shape == (5 * SR,)
            name = seed12.instruments[inst].name
            assert active_rms_db(stem) > -65, name
            for n in notes:  # every note sounds while it is held
                if n.end - n.start >= 0.05:
                    window = stem[int(n.start * SR): int(n.end * SR)]
                    assert rms_db(window) > -80, (name, n)
            seen.add(inst)
    assert seen == set(range(12))


def test_note_timing_is_sample_accurate(synth, seed12) -> None:  # noqa: ANN001
    """Nothing sounds before a note starts; it sounds within one block plus the attack."""
    for k, inst in enumerate(seed12.instruments):
        for start in (0.25, 1.0, 3.3337):
            stem = synth.render_stem(inst, [Note(k, 64, 90, start, start + 0.5)], 4.0)
            onset = int(np.flatnonzero(stem)[0])
            first = int(round(start * SR))
            assert first <= onset <= first + 64 + int(0.012 * SR), (inst.name, start, onset)
            assert not stem[:first].any()


def test_stem_with_no_notes_is_silent(synth, seed12) -> None:  # noqa: ANN001
    stem = synth.render_stem(seed12.instruments[0], [], 5.0)
    assert stem.shape == (5 * SR,) and not stem.any()
    assert active_rms_db(stem) == float("-inf")


def test_stem_length_follows_seconds(synth, seed12) -> None:  # noqa: ANN001
    for seconds in (0.5, 1.23456, 5.0):
        stem = synth.render_stem(seed12.instruments[3], [Note(3, 70, 80, 0.0, 0.2)], seconds)
        assert stem.shape == (int(round(seconds * SR)),)


def test_no_bleed_from_one_stem_into_the_next(synth, seed12) -> None:  # noqa: ANN001
    """A loud stem still sounding at its end, then an empty stem: exactly zero."""
    lead = seed12.instruments[7]  # square wave lead, the loudest program
    loud = [Note(7, p, 127, 0.0, 5.0) for p in (60, 64, 67, 72)]
    stem = synth.render_stem(lead, loud, 5.0)
    assert rms_db(stem[-2048:]) > -40  # still loud when the stem ends
    after = synth.render_stem(lead, [], 5.0)
    assert not after.any()
    # and the next instrument's stem is silent until its own first note
    violin = synth.render_stem(seed12.instruments[9], [Note(9, 67, 70, 2.0, 3.0)], 5.0)
    assert not violin[: 2 * SR].any() and violin.any()


def test_determinism_across_backends_and_history(synth, seed12) -> None:  # noqa: ANN001
    """Same input, identical arrays: on a second backend, and after other stems."""
    cfg = ScoreConfig()
    jobs = []
    for index in range(4):
        score = generate_score(seed12, cfg, 9, index)
        jobs += [(seed12.instruments[i], score.notes_of(i)) for i in score.instruments]
    first = [synth.render_stem(inst, notes, 5.0) for inst, notes in jobs]

    other = FluidSynthBackend()
    try:
        # render in reverse order, with a loud unrelated stem in between
        lead = seed12.instruments[7]
        second = []
        for inst, notes in reversed(jobs):
            other.render_stem(lead, [Note(7, 72, 127, 0.0, 5.0)], 5.0)
            second.append(other.render_stem(inst, notes, 5.0))
        second.reverse()
        third = [other.render_stem(inst, notes, 5.0) for inst, notes in jobs]
    finally:
        other.close()
    for a, b, c in zip(first, second, third):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_reverb_and_chorus_are_parameters(seed12) -> None:  # noqa: ANN001
    inst, lead = seed12.instruments[3], seed12.instruments[7]  # piccolo: a short release
    notes = [Note(3, 72, 100, 0.2, 0.6)]
    wet = FluidSynthBackend(reverb=True, chorus=True)
    try:
        assert (wet.identity()["reverb"], wet.identity()["chorus"]) == (True, True)
        empty_first = wet.render_stem(inst, [], 2.0)
        a = wet.render_stem(inst, notes, 2.0)
        wet.render_stem(lead, [Note(7, 72, 127, 0.0, 2.0)], 2.0)  # loud, with a long tail
        empty_after = wet.render_stem(inst, [], 2.0)
        b = wet.render_stem(inst, notes, 2.0)
    finally:
        wet.close()
    dry = FluidSynthBackend()
    try:
        d = dry.render_stem(inst, notes, 2.0)
    finally:
        dry.close()
    assert np.array_equal(a, b)
    # no reverb tail carried over: an empty stem is the same whatever came before, and
    # holds only the reverb's denormal guard (far below -120 dBFS)
    assert np.array_equal(empty_first, empty_after)
    assert float(np.abs(empty_after).max()) < 1e-6
    assert not np.array_equal(a, d)
    # the reverb tail rings on after the dry note has faded
    tail = slice(int(1.0 * SR), int(1.5 * SR))
    assert rms_db(a[tail]) > rms_db(d[tail]) + 10


def test_sf3_soundfont_renders_and_changes_the_identity(synth, seed12, capfd) -> None:  # noqa: ANN001
    if not SF3.is_file():
        pytest.skip("MuseScore_General.sf3 is not installed")
    other = FluidSynthBackend(str(SF3))
    try:
        stem = other.render_stem(seed12.instruments[0], [Note(0, 60, 90, 0.1, 1.0)], 1.5)
        ident = other.identity()
    finally:
        other.close()
    assert active_rms_db(stem) > -65
    assert "fluidsynth" not in capfd.readouterr().err  # layered presets: no voice warnings
    assert ident["soundfont"] == SF3.resolve().name
    assert ident["soundfont_sha256"] != synth.identity()["soundfont_sha256"]


# --- soundfonts ---------------------------------------------------------------------------

def test_default_soundfont_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INSTRLAB_SOUNDFONT", raising=False)
    path = find_soundfont()
    assert path.name == "FluidR3_GM.sf2" and path.is_file()
    assert find_soundfont("FluidR3_GM.sf2") == path
    monkeypatch.setenv("INSTRLAB_SOUNDFONT", str(SF3))
    if SF3.is_file():
        assert find_soundfont() == SF3.resolve()


@pytest.mark.parametrize("name", ["/no/such/dir/font.sf2", "NoSuchFont.sf2"])
def test_missing_soundfont_says_how_to_install_one(name: str) -> None:
    with pytest.raises(InstrlabError) as info:
        FluidSynthBackend(name)
    msg = str(info.value)
    assert "not found" in msg and "apt-get install fluid-soundfont-gm" in msg
    assert "--soundfont" in msg and "\n" not in msg


@pytest.mark.parametrize("name,package", [("TimGM6mb.sf2", "timgm6mb-soundfont"),
                                          ("sf_GMbank.sf2", "csound-soundfont")])
def test_a_missing_default_family_names_its_debian_package(
        name: str, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default training data needs four soundfonts: a machine without one is told
    which package brings it (here the search finds none: an empty directory)."""
    import instrlab.synth.soundfonts as soundfonts

    monkeypatch.setattr(soundfonts, "_candidate_dirs", lambda: [tmp_path])
    with pytest.raises(InstrlabError) as info:
        find_soundfont(name)
    msg = str(info.value)
    assert f"apt-get install {package}" in msg and "scripts/setup.sh" in msg
    assert "\n" not in msg


def test_soundfont_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InstrlabError, match="is not a file"):
        FluidSynthBackend(str(tmp_path))


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"RIFF"])
def test_random_bytes_are_not_a_soundfont(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "random.sf2"
    path.write_bytes(content)
    with pytest.raises(InstrlabError, match="is not a valid SoundFont"):
        FluidSynthBackend(str(path))


def test_corrupt_soundfont_with_a_valid_header(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.sf2"
    body = b"sfbk" + b"LIST" + struct.pack("<I", 10_000) + os.urandom(4096)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    synth = FluidSynthBackend(str(path))  # loads on first use: a cached dataset needs none
    with pytest.raises(InstrlabError) as info:
        synth.check_instruments([Instrument("piano", 0)])
    msg = str(info.value)
    assert f"could not load soundfont {path}" in msg and "--soundfont" in msg
    assert "\n" not in msg
    # FluidSynth's own log lines are folded into that message, not printed
    out, err = capfd.readouterr()
    assert "fluidsynth" not in err and "fluidsynth" not in out


def test_instrument_missing_from_the_soundfont(synth, capfd) -> None:  # noqa: ANN001
    ghost = Instrument("ghost", 0, bank=5)
    with pytest.raises(InstrlabError, match=r"has no preset for 'ghost' \(bank 5 program 0\)"):
        synth.check_instruments([Instrument("piano", 0), ghost])
    assert "no preset" not in capfd.readouterr().err  # one line from instrlab, no log
    synth.check_instruments([Instrument("piano", 0), Instrument("pad", 88)])
    # rendering checks too, whether or not the set was checked first
    with pytest.raises(InstrlabError, match="has no preset bank 5 program 0"):
        synth.render_stem(ghost, [Note(0, 60, 90, 0.0, 0.5)], 1.0)


def test_bad_backend_settings() -> None:
    with pytest.raises(InstrlabError, match="sample_rate 12345"):
        FluidSynthBackend(sample_rate=12345)
    with pytest.raises(InstrlabError, match="interpolation"):
        FluidSynthBackend(interpolation=3)


# --- mixing -------------------------------------------------------------------------------

def test_active_rms_ignores_silence() -> None:
    t = np.arange(5 * SR) / SR
    sine = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    short = sine.copy()
    short[SR // 2:] = 0
    assert active_rms_db(sine) == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.01)
    assert active_rms_db(short) == pytest.approx(active_rms_db(sine), abs=0.2)
    assert rms_db(short) < rms_db(sine) - 9  # plain RMS would call it 10 dB quieter
    assert active_rms_db(np.zeros(100, np.float32)) == float("-inf")


def test_quiet_piano_and_loud_square_lead_are_brought_level(synth, seed12) -> None:  # noqa: ANN001
    piano, lead = seed12.instruments[0], seed12.instruments[7]
    notes = [Note(0, p, 70, 0.4 * j, 0.4 * j + 1.5) for j, p in enumerate((60, 64, 67, 72))]
    raw_piano = synth.render_stem(piano, notes, 5.0)
    raw_lead = synth.render_stem(lead, [Note(7, n.pitch, n.velocity, n.start, n.end)
                                        for n in notes], 5.0)
    # FluidSynth's raw levels differ a lot between these programs
    assert active_rms_db(raw_lead) - active_rms_db(raw_piano) > 3

    cfg = MixConfig()
    mix, levels, gains = mix_stems([raw_piano, raw_lead], cfg)
    assert levels == [active_rms_db(raw_piano), active_rms_db(raw_lead)]
    scaled = [s * 10 ** (g / 20) for s, g in zip((raw_piano, raw_lead), gains)]
    for s in scaled:  # both at the stem target before summing
        assert active_rms_db(s) == pytest.approx(cfg.stem_rms_db, abs=0.01)
    assert abs(active_rms_db(scaled[0]) - active_rms_db(scaled[1])) < 1.0
    # the peak of the mix is the target
    assert mix.dtype == np.float32
    assert float(np.abs(mix).max()) == pytest.approx(10 ** (cfg.peak_db / 20), rel=1e-6)


def test_mix_peak_and_levels_for_real_scores(synth, seed12) -> None:  # noqa: ANN001
    cfg = MixConfig(stem_rms_db=-23.0, peak_db=-3.0)
    for index in range(6):
        score = generate_score(seed12, ScoreConfig(), 2, index)
        stems = [synth.render_stem(seed12.instruments[i], score.notes_of(i), 5.0)
                 for i in score.instruments]
        mix, levels, gains = mix_stems(stems, cfg)
        assert float(np.abs(mix).max()) == pytest.approx(10 ** (-3 / 20), rel=1e-6)
        normalised = [active_rms_db(s * 10 ** (g / 20)) for s, g in zip(stems, gains)]
        assert max(normalised) - min(normalised) < 0.01
        assert all(lv + g == pytest.approx(-23.0) for lv, g in zip(levels, gains))


def test_mix_of_silence_and_extra_gain() -> None:
    silent = np.zeros(4096, np.float32)
    mix, levels, gains = mix_stems([silent, silent], MixConfig())
    assert not mix.any() and levels == [float("-inf")] * 2 and gains == [0.0, 0.0]

    t = np.arange(8192) / SR
    a = np.sin(2 * np.pi * 300 * t).astype(np.float32)
    b = 0.01 * np.sin(2 * np.pi * 500 * t).astype(np.float32)
    _, levels, gains = mix_stems([a, b, np.zeros_like(a)], MixConfig(),
                                 extra_gain_db=[0.0, 6.0, 0.0])
    assert (levels[0] + gains[0]) + 6 == pytest.approx(levels[1] + gains[1])
    assert gains[2] == 0.0


def test_generator_offsets_change_one_stem_only(synth, seed12) -> None:  # noqa: ANN001
    from instrlab.synth.augment import VOICING_GENERATORS

    lead = seed12.instruments[7]  # square wave: bright, so a closed filter shows clearly
    notes = [Note(7, 67, 100, 0.1, 1.5)]
    plain = synth.render_stem(lead, notes, 2.0)
    fc = VOICING_GENERATORS["filter_fc"][0]
    dark = synth.render_stem(lead, notes, 2.0, generators={fc: -3600.0})
    again = synth.render_stem(lead, notes, 2.0)

    def centroid(x: np.ndarray) -> float:
        mag = np.abs(np.fft.rfft(x))
        return float((mag * np.arange(len(mag))).sum() / mag.sum())

    assert centroid(dark) < 0.7 * centroid(plain)
    assert np.array_equal(again, plain)  # the offsets die with the stem's synth
