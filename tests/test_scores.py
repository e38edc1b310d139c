"""Random scores: the seed's distributions, per-sample seeds, and MIDI files read by mido."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument, InstrumentSet
from instrlab.scores import ScoreConfig, generate_score, sample_seed, score_to_midi

N_SCORES = 3000


@pytest.fixture(scope="module")
def scores(seed12):  # noqa: ANN001, ANN201
    cfg = ScoreConfig()
    return [generate_score(seed12, cfg, 0, i) for i in range(N_SCORES)]


def test_instrument_counts_and_shares_follow_the_seed(scores, seed12) -> None:  # noqa: ANN001
    counts = Counter(len(s.instruments) for s in scores)
    assert set(counts) == {1, 2, 3, 4}
    for k in (1, 2, 3, 4):  # uniform 1..4: a quarter each
        assert abs(counts[k] / N_SCORES - 0.25) < 0.035, counts
    per_instrument = Counter(i for s in scores for i in s.instruments)
    assert set(per_instrument) == set(range(12))
    for i in range(12):  # E[k] / 12 = 2.5 / 12 = 20.8 %
        assert abs(per_instrument[i] / N_SCORES - 2.5 / 12) < 0.03, per_instrument
    for s in scores:
        assert len(set(s.instruments)) == len(s.instruments)  # without replacement
        assert list(s.instruments) == sorted(s.instruments)


def test_notes_follow_the_seed_distributions(scores, seed12) -> None:  # noqa: ANN001
    pitches, velocities, durations, first_starts, first_durations = [], [], [], [], []
    for s in scores:
        for inst in s.instruments:
            notes = s.notes_of(inst)
            # every labelled instrument sounds inside the clip: no label without audio
            assert 1 <= len(notes) <= 5
            assert notes[0].start <= 5.0 - 0.3 + 1e-9
            spec = seed12.instruments[inst]
            for n in notes:
                assert 0.0 <= n.start < n.end <= s.clip_seconds
                assert spec.pitch_range[0] <= n.pitch <= spec.pitch_range[1]
                assert spec.velocity_range[0] <= n.velocity <= spec.velocity_range[1]
                pitches.append(n.pitch)
                velocities.append(n.velocity)
                if n.end < s.clip_seconds:
                    durations.append(n.end - n.start)
            # a first note starts after a U(0, 1) s gap and is never cut by a 5 s clip
            first_starts.append(notes[0].start)
            first_durations.append(notes[0].end - notes[0].start)
            starts = [n.start for n in notes]
            assert starts == sorted(starts)
            # one instrument's notes do not overlap (gap >= 0 after each note)
            assert all(a.end <= b.start + 1e-9 for a, b in zip(notes, notes[1:]))
        assert {n.instrument for n in s.notes} == set(s.instruments)
    assert set(pitches) == set(range(60, 73))  # C4..C5 inclusive
    assert min(velocities) == 50 and max(velocities) == 100
    assert 0.3 - 1e-3 <= min(durations) and max(durations) <= 2.0 + 1e-3
    assert abs(np.mean(first_durations) - 1.15) < 0.03  # U(0.3, 2.0)
    assert abs(np.mean(first_starts) - 0.5) < 0.02  # U(0, 1)
    assert max(first_starts) <= 1.0 + 1e-3


def test_first_note_is_pulled_into_the_clip_for_short_clips(seed12) -> None:  # noqa: ANN001
    cfg = ScoreConfig(clip_seconds=0.5, min_instruments=4, max_instruments=4)
    for i in range(200):
        s = generate_score(seed12, cfg, 3, i)
        for inst in s.instruments:
            notes = s.notes_of(inst)
            assert notes and notes[0].start <= 0.2 + 1e-9 and notes[0].end > notes[0].start


def test_configurable_counts(seed12) -> None:  # noqa: ANN001
    cfg = ScoreConfig(min_instruments=2, max_instruments=2, notes_per_instrument=3)
    for i in range(50):
        s = generate_score(seed12, cfg, 1, i)
        assert len(s.instruments) == 2
        assert all(len(s.notes_of(k)) <= 3 for k in s.instruments)


def test_every_sample_has_its_own_seed(seed12) -> None:  # noqa: ANN001
    cfg = ScoreConfig()
    in_sequence = [generate_score(seed12, cfg, 42, i) for i in range(40)]
    alone = generate_score(seed12, cfg, 42, 37)  # regenerated alone, in another order
    assert alone == in_sequence[37]
    assert generate_score(seed12, cfg, 42, 5) == in_sequence[5]
    assert alone.seed == sample_seed(42, 37)

    seeds = {sample_seed(42, i) for i in range(1000)} | {sample_seed(43, i) for i in range(1000)}
    assert len(seeds) == 2000
    assert all(0 <= s < 2**63 for s in seeds)
    other = [generate_score(seed12, cfg, 43, i) for i in range(40)]
    assert sum(a.notes != b.notes for a, b in zip(in_sequence, other)) == 40


@pytest.mark.parametrize("shift", [-12, 12])
def test_pitch_shift_moves_every_note_and_keeps_the_rest(seed12, shift: int) -> None:  # noqa: ANN001
    for index in range(20):
        base = generate_score(seed12, ScoreConfig(), 3, index)
        moved = generate_score(seed12, ScoreConfig(pitch_shift=shift), 3, index)
        assert moved.instruments == base.instruments
        assert [(n.instrument, n.start, n.end, n.velocity) for n in moved.notes] == [
            (n.instrument, n.start, n.end, n.velocity) for n in base.notes]
        assert [m.pitch - n.pitch for m, n in zip(moved.notes, base.notes)] == [shift] * len(
            base.notes)


def test_score_config_validation() -> None:
    cases = [
        (ScoreConfig(min_instruments=0), "min_instruments must be >= 1"),
        (ScoreConfig(min_instruments=3, max_instruments=2), r"max_instruments \(2\) must be >= "
                                                            r"min_instruments \(3\)"),
        (ScoreConfig(max_instruments=13), r"max_instruments \(13\) is larger than the "
                                          r"instrument set \(12 instruments\)"),
        (ScoreConfig(notes_per_instrument=0), "notes_per_instrument"),
        (ScoreConfig(gap_seconds=(1.0, 0.5)), "gap_seconds"),
        (ScoreConfig(note_seconds=(0.0, 1.0)), "note_seconds"),
        (ScoreConfig(clip_seconds=0.1), "clip_seconds"),
        (ScoreConfig(pitch_shift=49), r"pitch_shift must be in -48..48 semitones, got 49"),
        (ScoreConfig(pitch_shift=-60), r"pitch_shift must be in -48..48 semitones, got -60"),
    ]
    for cfg, message in cases:
        with pytest.raises(InstrlabError, match=message):
            cfg.validate(12)
    ScoreConfig().validate(12)


def read_midi_notes(path: Path) -> tuple[dict[int, int], list[tuple[int, int, int, float, float]]]:
    """(channel -> program, [(channel, pitch, velocity, start s, end s)]) as mido plays it."""
    programs: dict[int, int] = {}
    active: dict[tuple[int, int], tuple[int, float]] = {}
    notes = []
    now = 0.0
    for msg in mido.MidiFile(path):  # merged tracks, times in seconds at the file's tempo
        now += msg.time
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            active[(msg.channel, msg.note)] = (msg.velocity, now)
        elif msg.type in ("note_off", "note_on"):
            vel, start = active.pop((msg.channel, msg.note))
            notes.append((msg.channel, msg.note, vel, start, now))
    assert not active
    return programs, sorted(notes)


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 5])
def test_midi_round_trip(tmp_path: Path, seed12, index: int) -> None:  # noqa: ANN001
    score = generate_score(seed12, ScoreConfig(), 11, index)
    path = tmp_path / "score.mid"
    score_to_midi(score, seed12).save(path)

    mid = mido.MidiFile(path)
    assert mid.type == 1 and len(mid.tracks) == 1 + len(score.instruments)
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(120)]
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == [seed12.instruments[i].name for i in score.instruments]

    programs, notes = read_midi_notes(path)
    assert 9 not in programs  # the GM drum channel is never used
    channel_of = {inst: ch for ch, inst in zip(sorted(programs), score.instruments)}
    assert [programs[channel_of[i]] for i in score.instruments] == [
        seed12.instruments[i].program for i in score.instruments]
    expected = sorted((channel_of[n.instrument], n.pitch, n.velocity, n.start, n.end)
                      for n in score.notes)
    assert len(notes) == len(score.notes)
    for got, want in zip(notes, expected):
        assert got[:3] == want[:3]
        assert got[3] == pytest.approx(want[3], abs=1e-6)
        assert got[4] == pytest.approx(want[4], abs=1e-6)
    assert mid.length == pytest.approx(max(n.end for n in score.notes), abs=1e-6)


def test_midi_with_many_instruments_and_banks(tmp_path: Path) -> None:
    iset = InstrumentSet("wide", tuple(
        Instrument(f"i{k}", program=k * 10, bank=300 if k == 2 else 0) for k in range(12)))
    cfg = ScoreConfig(min_instruments=12, max_instruments=12)
    score = generate_score(iset, cfg, 0, 0)
    path = tmp_path / "wide.mid"
    score_to_midi(score, iset).save(path)
    mid = mido.MidiFile(path)
    channels = [next(m.channel for m in t if m.type == "program_change") for t in mid.tracks[1:]]
    assert channels == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]
    bank_msgs = [(m.control, m.value) for m in mid.tracks[3] if m.type == "control_change"]
    assert bank_msgs == [(0, 300 >> 7), (32, 300 & 127)]
    programs, notes = read_midi_notes(path)
    assert sorted(programs.values()) == [k * 10 for k in range(12)]
    assert len(notes) == len(score.notes)
