"""MIDI files as a score source: real files written with mido, cut into labelled clips by the
``midi_files`` generator; bad files are one-line warnings, no usable file an error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mido
import numpy as np
import pytest
from test_cli import assert_one_line_error, run_cli

from instrlab.cli import resolve_config
from instrlab.dataset import build, generate_dataset, open_dataset
from instrlab.dataset.config import build_identity, identity_digest
from instrlab.errors import InstrlabError
from instrlab.instruments import InstrumentSet
from instrlab.registry import score_generators
from instrlab.scores import Note, ScoreConfig, ScoreRequest, generate_score
from instrlab.scores.midi_files import _load

TPB = 480  # ticks per beat of the files written here
PIANO, BRIGHT_PIANO, TRUMPET, VIOLIN = 0, 1, 56, 40  # GM programs, from 0

# (channel, program, [(pitch, start beat, end beat, velocity)]); at 120 bpm a beat is 0.5 s
Track = tuple[int, int, list[tuple[int, float, float, int]]]


def write_midi(path: Path, tracks: list[Track], tempi: tuple[tuple[float, float], ...] = (
        (0.0, 120.0),), kind: int = 1) -> Path:
    """A MIDI file of ``kind`` with a conductor track of ``tempi`` ((beat, bpm) changes) and
    one track per entry of ``tracks``."""
    mid = mido.MidiFile(type=kind, ticks_per_beat=TPB)
    conductor = mido.MidiTrack()
    now = 0
    for beat, bpm in tempi:
        tick = round(beat * TPB)
        conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm),
                                          time=tick - now))
        now = tick
    mid.tracks.append(conductor)
    for channel, program, notes in tracks:
        events = [(0, 0, mido.Message("program_change", channel=channel, program=program))]
        for pitch, start, end, velocity in notes:
            events.append((round(start * TPB), 2, mido.Message(
                "note_on", channel=channel, note=pitch, velocity=velocity)))
            events.append((round(end * TPB), 1, mido.Message(
                "note_off", channel=channel, note=pitch, velocity=0)))
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


def band(path: Path) -> Path:
    """Windows of 2 s: piano, then trumpet with a held piano note, then only bright piano;
    drums play all along."""
    return write_midi(path, [
        (0, PIANO, [(60, 0, 1, 90), (64, 1, 2, 80), (67, 3, 5, 70)]),  # 0..0.5, 0.5..1, 1.5..2.5
        (1, TRUMPET, [(72, 5, 7, 100)]),  # 2.5..3.5
        (2, BRIGHT_PIANO, [(48, 8, 12, 60)]),  # 4..6
        (9, 0, [(36, b, b + 0.5, 120) for b in range(12)]),
    ])


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Parsed files are cached under $INSTRLAB_CACHE: each test its own, never the user's."""
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def midi_cfg(*files: Path | str, **kw: object) -> ScoreConfig:
    kw.setdefault("clip_seconds", 2.0)
    return ScoreConfig(generators=(("midi_files", 1.0),),  # type: ignore[arg-type]
                       midi_files=tuple(str(f) for f in files), **kw)


def clip(iset: InstrumentSet, cfg: ScoreConfig, index: int) -> tuple[list[str], list[tuple]]:
    score = generate_score(iset, cfg, 0, index)
    return ([iset.names[i] for i in score.instruments],
            [(iset.names[n.instrument], n.pitch, n.velocity, round(n.start, 4), round(n.end, 4))
             for n in score.notes])


def test_mapped_tracks_label_the_windows_they_sound_in(seed12: InstrumentSet,
                                                       tmp_path: Path) -> None:
    cfg = midi_cfg(band(tmp_path / "band.mid"))
    cfg.validate(len(seed12))
    cfg.prepare(seed12)
    piano = (["acoustic_grand_piano"], [("acoustic_grand_piano", 60, 90, 0.0, 0.5),
                                        ("acoustic_grand_piano", 64, 80, 0.5, 1.0),
                                        ("acoustic_grand_piano", 67, 70, 1.5, 2.0)])
    assert clip(seed12, cfg, 0) == piano
    # the held piano note starts the second window at 0; drums and bright piano never sound
    assert clip(seed12, cfg, 1) == (["acoustic_grand_piano", "trumpet"], [
        ("acoustic_grand_piano", 67, 70, 0.0, 0.5), ("trumpet", 72, 100, 0.5, 1.5)])
    assert clip(seed12, cfg, 2) == piano  # only two windows: the index wraps
    assert clip(seed12, cfg, 7)[0] == ["acoustic_grand_piano", "trumpet"]


def test_family_maps_an_unmapped_program_to_its_family(seed12: InstrumentSet,
                                                       tmp_path: Path) -> None:
    cfg = midi_cfg(band(tmp_path / "band.mid"), midi_map="family")
    assert clip(seed12, cfg, 2) == (["acoustic_grand_piano"],
                                    [("acoustic_grand_piano", 48, 60, 0.0, 2.0)])
    assert clip(seed12, cfg, 3) == clip(seed12, cfg, 0)  # three windows now
    assert clip(seed12, cfg, 5) == clip(seed12, cfg, 2)


def test_note_times_follow_tempo_changes(seed12: InstrumentSet, tmp_path: Path) -> None:
    # 120 bpm for 2 beats (1 s), then 60 bpm: beat 3 is at 2 s, beat 4 at 3 s
    path = write_midi(tmp_path / "tempo.mid", [(0, VIOLIN, [(70, 1, 2, 64), (71, 3, 4, 65)])],
                      tempi=((0, 120), (2, 60)))
    assert clip(seed12, midi_cfg(path, clip_seconds=5.0), 0) == (["violin"], [
        ("violin", 70, 64, 0.5, 1.0), ("violin", 71, 65, 2.0, 3.0)])


def test_directories_give_their_midi_files_in_order_and_skip_silent_windows(
        seed12: InstrumentSet, tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    write_midi(songs / "b.midi", [(3, TRUMPET, [(70, 0, 1, 90)])])
    write_midi(songs / "a.MID", [(0, VIOLIN, [(60, 0, 1, 90), (62, 12, 13, 90)])])  # 0 s, 6 s
    (songs / "notes.txt").write_text("not a MIDI file")
    write_midi(songs / "deeper" / "c.mid", [(0, PIANO, [(60, 0, 1, 90)])])  # not recursive
    cfg = midi_cfg(songs)
    assert [clip(seed12, cfg, i) for i in range(3)] == [
        (["violin"], [("violin", 60, 90, 0.0, 0.5)]),
        (["violin"], [("violin", 62, 90, 0.0, 0.5)]),  # window 3 of a; 1 and 2 are silent
        (["trumpet"], [("trumpet", 70, 90, 0.0, 0.5)]),
    ]
    assert clip(seed12, cfg, 3) == clip(seed12, cfg, 0)


def test_bad_files_are_skipped_with_one_line_warnings(seed12: InstrumentSet, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    good = band(tmp_path / "good.mid")
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(good.read_bytes()[:40])  # cut inside a track
    noise = tmp_path / "noise.mid"
    noise.write_bytes(os.urandom(512))
    empty = write_midi(tmp_path / "empty.mid", [])
    async_ = write_midi(tmp_path / "async.mid", [(0, PIANO, [(60, 0, 1, 90)])], kind=2)
    drums = write_midi(tmp_path / "drums.mid", [(9, 0, [(36, 0, 1, 100)]),
                                                (0, BRIGHT_PIANO, [(60, 0, 1, 90)])])
    bad = (corrupt, noise, empty, async_, drums)
    cfg = midi_cfg(*bad, good)
    cfg.prepare(seed12)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(bad), lines
    reasons = ("not a readable MIDI file", "not a readable MIDI file", "holds no notes",
               "type 2", "no track plays an instrument of the set")
    for line, path, reason in zip(lines, bad, reasons):
        assert line.startswith(f"instrlab: warning: skipping MIDI file {path}: "), line
        assert reason in line, (reason, line)
    assert "1, drums); --midi-map family" in lines[-1]
    assert clip(seed12, cfg, 0)[0] == ["acoustic_grand_piano"]

    with pytest.raises(InstrlabError) as err:
        midi_cfg(*bad).prepare(seed12)
    assert "\n" not in str(err.value)
    assert "none of the 5 MIDI files gives a clip" in str(err.value)
    assert "--midi-map family" in str(err.value)


def test_settings_that_cannot_work_are_one_line_errors(tmp_path: Path,
                                                       seed12: InstrumentSet) -> None:
    song = band(tmp_path / "band.mid")
    cases = [
        (midi_cfg(song, midi_map="genre"), "midi_map must be one of program, family"),
        (ScoreConfig(generators=(("midi_files", 1.0),)), "--midi-files PATH"),
        (ScoreConfig(midi_files=(str(song),)), "add midi_files=1 to --score-generators"),
    ]
    for cfg, message in cases:
        with pytest.raises(InstrlabError, match=message):
            cfg.validate(len(seed12))
    with pytest.raises(InstrlabError, match="missing.mid does not exist"):
        midi_cfg(tmp_path / "missing.mid").prepare(seed12)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InstrlabError, match="holds no .mid or .midi file"):
        midi_cfg(tmp_path / "nothing").prepare(seed12)


def test_a_generator_choosing_its_instruments_needs_a_note(seed12: InstrumentSet) -> None:
    @score_generators.register("test_mute")
    def mute(req: ScoreRequest) -> list[Note]:
        return [Note(0, 60, 80, req.cfg.clip_seconds + 1, req.cfg.clip_seconds + 2)]

    mute.chooses_instruments = True  # type: ignore[attr-defined]
    try:
        with pytest.raises(InstrlabError, match="'test_mute' wrote no note inside clip 3"):
            generate_score(seed12, ScoreConfig(generators=(("test_mute", 1.0),)), 0, 3)
    finally:
        score_generators.unregister("test_mute")


def test_the_identity_follows_the_files_bytes(make_config, tmp_path: Path,  # noqa: ANN001
                                              seed12: InstrumentSet) -> None:
    def identity(cfg: ScoreConfig) -> dict:
        return build_identity(make_config(score=cfg), [], {}, seed12.to_dict())

    plain = identity(ScoreConfig())
    assert identity(ScoreConfig(midi_map="family")) == plain  # no files: nothing changes
    assert not {"midi_files", "midi_map"} & set(plain["config"]["score"])
    assert "score_files" not in plain

    song = band(tmp_path / "a" / "band.mid")
    first = identity(midi_cfg(song))
    assert len(first["score_files"]) == 1 and len(first["score_files"][0]) == 64
    moved = band(tmp_path / "b" / "band.mid")  # the same bytes elsewhere: the same data
    assert identity_digest(identity(midi_cfg(moved))) == identity_digest(first)
    assert identity_digest(identity(midi_cfg(song, midi_map="family"))) != \
        identity_digest(first)
    write_midi(song, [(0, PIANO, [(61, 0, 1, 90)])])
    assert identity_digest(identity(midi_cfg(song))) != identity_digest(first)


def test_a_dataset_of_midi_files_is_labelled_by_its_files(
        make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
        capfd: pytest.CaptureFixture[str]) -> None:
    songs = tmp_path / "songs"
    band(songs / "band.mid")
    (songs / "broken.mid").write_bytes(b"MThd\x00\x00")
    cfg = make_config(n_samples=6, test_protocol=False, score=midi_cfg(songs))
    ds = open_dataset(generate_dataset(cfg, out=tmp_path / "ds", workers=1, progress=False))
    expected = [["acoustic_grand_piano"], ["acoustic_grand_piano", "trumpet"]] * 3
    manifest = ds.manifest()
    assert [r["instruments"] for r in manifest] == expected
    assert [[ds.instrument_names[i] for i in np.flatnonzero(row)] for row in ds.labels] == \
        expected
    assert manifest[1]["notes"] == [["acoustic_grand_piano", 67, 70, 0.0, 0.5],
                                    ["trumpet", 72, 100, 0.5, 1.5]]
    meta = json.loads((ds.path / "config.json").read_text())
    assert len(meta["identity"]["score_files"]) == 2
    warned = [w for w in capfd.readouterr().err.splitlines() if "broken.mid" in w]
    assert len(warned) == 1 and warned[0].startswith("instrlab: warning: skipping"), warned

    # worker processes parse the files too, quietly, and give the same bytes
    _load.cache_clear()
    monkeypatch.setattr(build, "MIN_PARALLEL", 0)
    monkeypatch.setattr(build, "CHUNK", 3)
    monkeypatch.setattr(build, "_worker", {})
    again = open_dataset(generate_dataset(cfg, out=tmp_path / "ds2", workers=2, progress=False))
    assert np.array_equal(again.features, ds.features)
    assert again.manifest() == manifest
    assert [w for w in capfd.readouterr().err.splitlines() if "broken.mid" in w] == warned


def test_command_line_errors(isolated: Path) -> None:  # noqa: ANN001
    proc = run_cli(["generate", "--n-samples", "4", "--score-generators", "midi_files=1"],
                   isolated)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "'midi_files' needs MIDI files", "--midi-files")
    noise = isolated / "noise.mid"
    noise.write_bytes(os.urandom(256))
    proc = run_cli(["generate", "--n-samples", "4", "--score-generators", "midi_files=1",
                    "--midi-files", "noise.mid", "--midi-map", "family"], isolated)
    assert proc.returncode == 2
    warning, error = proc.stderr.splitlines()
    assert warning.startswith("instrlab: warning: skipping MIDI file noise.mid: not a "
                              "readable MIDI file"), warning
    assert_one_line_error(error, "none of the 1 MIDI files gives a clip")
    assert [p for p in isolated.rglob("*") if p.is_file()] == [noise], "nothing is written"


def test_a_path_with_spaces_stays_one_path(isolated: Path) -> None:  # noqa: ANN001
    band(isolated / "my songs" / "a band.mid")
    assert resolve_config(["generate", "--midi-files", "my songs/a band.mid", "x.mid"]
                          ).data.score.midi_files == ("my songs/a band.mid", "x.mid")
    proc = run_cli(["generate", "--n-samples", "2", "--workers", "1",
                    "--score-generators", "midi_files=1", "--midi-files", "my songs"], isolated)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((Path(proc.stdout.split()[-1]) / "config.json").read_text())
    assert len(meta["identity"]["score_files"]) == 1


def test_each_file_is_parsed_once_per_content(seed12: InstrumentSet, tmp_path: Path,
                                              own_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    import mido

    songs = tmp_path / "songs"
    band(songs / "band.mid")
    (songs / "broken.mid").write_bytes(b"MThd\x00\x00")
    cfg = midi_cfg(songs)
    first = [clip(seed12, cfg, i) for i in range(3)]
    entries = sorted((own_cache / "midi").glob("*.json"))
    assert len(entries) == 2  # the broken file's reason is kept too

    parse = mido.MidiFile

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed a file the cache holds")

    monkeypatch.setattr(mido, "MidiFile", refuse)
    _load.cache_clear()  # as a new process: only the disk cache is left
    assert [clip(seed12, cfg, i) for i in range(3)] == first
    warned = [w for w in capfd.readouterr().err.splitlines() if "broken.mid" in w]
    assert len(warned) == 2 and warned[0] == warned[1], warned

    # a damaged or foreign entry is parsed again and replaced; no other file is touched
    monkeypatch.setattr(mido, "MidiFile", parse)
    for entry, text in zip(entries, ['{"notes": [[0, 60', '{"notes": 5, "heard": []}']):
        entry.write_text(text)
    _load.cache_clear()
    assert [clip(seed12, cfg, i) for i in range(3)] == first
    assert sorted((own_cache / "midi").glob("*")) == entries
    assert all(isinstance(json.loads(e.read_text()), dict) for e in entries)
    # another content is another entry
    write_midi(songs / "band.mid", [(0, PIANO, [(61, 0, 1, 90)])])
    _load.cache_clear()
    assert clip(seed12, cfg, 0)[1] == [("acoustic_grand_piano", 61, 90, 0.0, 0.5)]
    assert len(list((own_cache / "midi").glob("*.json"))) == 3
