"""Random scores (the seed's note distributions) and their MIDI files.

Every sample is generated from its own seed derived from (master seed, sample index),
so any sample can be regenerated alone and dataset shards are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.instruments import InstrumentSet

if TYPE_CHECKING:
    import mido

TICKS_PER_BEAT = 960
TEMPO_BPM = 120.0
_SECONDS_PER_TICK = 60.0 / TEMPO_BPM / TICKS_PER_BEAT
REGISTER_STREAM = 0x7E6  # random stream of register choices and pitches, apart from the score's


@dataclass(frozen=True)
class ScoreConfig:
    """How random scores are drawn; defaults follow the seed experiment."""

    min_instruments: int = 1
    max_instruments: int = 4
    notes_per_instrument: int = 5
    gap_seconds: tuple[float, float] = (0.0, 1.0)
    note_seconds: tuple[float, float] = (0.3, 2.0)
    clip_seconds: float = 5.0
    pitch_shift: int = 0
    """Semitones added to every drawn pitch (after the draw, so notes, timing and labels are
    those of the unshifted score): -12 and 12 score a model an octave outside its training
    range. Pitches stay within MIDI's 0..127."""
    register_share: float = 0.0
    """Share of a clip's instruments whose notes are drawn from the instrument's
    ``register`` instead of its ``pitch_range`` (0: the seed's protocol). Only pitches
    move: instruments, timing, velocities and labels are those of share 0."""

    def validate(self, n_instruments: int) -> None:
        """Raise :class:`InstrlabError` for settings no score can satisfy."""
        if self.min_instruments < 1:
            raise InstrlabError(f"min_instruments must be >= 1, got {self.min_instruments}")
        if self.max_instruments < self.min_instruments:
            raise InstrlabError(
                f"max_instruments ({self.max_instruments}) must be >= min_instruments "
                f"({self.min_instruments})"
            )
        if self.max_instruments > n_instruments:
            raise InstrlabError(
                f"max_instruments ({self.max_instruments}) is larger than the instrument set "
                f"({n_instruments} instruments); lower it or pick a larger set"
            )
        if self.notes_per_instrument < 1:
            raise InstrlabError(
                f"notes_per_instrument must be >= 1, got {self.notes_per_instrument}"
            )
        glo, ghi = self.gap_seconds
        nlo, nhi = self.note_seconds
        if not 0 <= glo <= ghi:
            raise InstrlabError(f"gap_seconds must be 0 <= low <= high, got {glo}..{ghi}")
        if not 0 < nlo <= nhi:
            raise InstrlabError(f"note_seconds must be 0 < low <= high, got {nlo}..{nhi}")
        if not -48 <= self.pitch_shift <= 48:
            raise InstrlabError(f"pitch_shift must be in -48..48 semitones, got {self.pitch_shift}")
        if not 0.0 <= self.register_share <= 1.0:
            raise InstrlabError(f"register_share must be in 0..1, got {self.register_share}")
        if not 0.5 <= self.clip_seconds <= 600:
            raise InstrlabError(f"clip_seconds must be in 0.5..600, got {self.clip_seconds}")


@dataclass(frozen=True)
class Note:
    """One note of one instrument, times in seconds (quantised to MIDI ticks)."""

    instrument: int
    pitch: int
    velocity: int
    start: float
    end: float


@dataclass(frozen=True)
class Score:
    """The notes of one sample and which instruments (indices into the set) play."""

    index: int
    seed: int
    instruments: tuple[int, ...]
    notes: tuple[Note, ...]
    clip_seconds: float

    def notes_of(self, instrument: int) -> list[Note]:
        return [n for n in self.notes if n.instrument == instrument]


def sample_seed(master_seed: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` that depends only on (master seed, index)."""
    ss = np.random.SeedSequence([int(master_seed) & 0xFFFFFFFF, int(index)])
    return int(ss.generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def _quantise(seconds: float) -> float:
    return round(seconds / _SECONDS_PER_TICK) * _SECONDS_PER_TICK


def generate_score(iset: InstrumentSet, cfg: ScoreConfig, master_seed: int, index: int) -> Score:
    """Draw the score of sample ``index``: instruments, then each instrument's notes.

    Notes that would start after the clip end are dropped and notes running past it are
    cut, but the first note of every instrument always starts inside the clip, so every
    labelled instrument sounds. Register choices and their pitches come from a stream of
    their own, so ``register_share`` changes pitches only.
    """
    seed = sample_seed(master_seed, index)
    rng = np.random.default_rng(seed)
    wide = np.random.default_rng(np.random.SeedSequence([seed, REGISTER_STREAM]))
    k = int(rng.integers(cfg.min_instruments, cfg.max_instruments + 1))
    chosen = tuple(sorted(int(i) for i in rng.choice(len(iset), size=k, replace=False)))
    # the last moment a first note may start and still sound for its minimum length
    latest_first = max(0.0, cfg.clip_seconds - cfg.note_seconds[0])
    notes: list[Note] = []
    for inst in chosen:
        spec = iset.instruments[inst]
        in_register = cfg.register_share > 0 and float(wide.random()) < cfg.register_share
        t = 0.0
        for j in range(cfg.notes_per_instrument):
            gap = float(rng.uniform(*cfg.gap_seconds))
            dur = float(rng.uniform(*cfg.note_seconds))
            pitch = int(rng.integers(spec.pitch_range[0], spec.pitch_range[1] + 1))
            if in_register:
                pitch = int(wide.integers(spec.wide_range[0], spec.wide_range[1] + 1))
            pitch = min(127, max(0, pitch + cfg.pitch_shift))
            vel = int(rng.integers(spec.velocity_range[0], spec.velocity_range[1] + 1))
            start = t + gap
            if j == 0:
                start = min(start, latest_first)
            t = start + dur
            if start >= cfg.clip_seconds:
                continue  # keep drawing so later draws do not depend on the clip length
            start_q = _quantise(start)
            end_q = min(_quantise(t), _quantise(cfg.clip_seconds))
            if end_q > start_q:
                notes.append(Note(inst, pitch, vel, start_q, end_q))
    return Score(index, seed, chosen, tuple(notes), cfg.clip_seconds)


def score_to_midi(score: Score, iset: InstrumentSet) -> mido.MidiFile:
    """The score as a type-1 MIDI file: one track per instrument, one channel each."""
    import mido  # here: ScoreConfig is read by --help, and mido costs 0.1 s to import

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
    mid.tracks.append(meta)
    for slot, inst in enumerate(score.instruments):
        spec = iset.instruments[inst]
        channel = slot if slot < 9 else slot + 1  # skip the GM drum channel
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=spec.name, time=0))
        if spec.bank:
            track.append(mido.Message("control_change", channel=channel, control=0,
                                      value=spec.bank >> 7, time=0))
            track.append(mido.Message("control_change", channel=channel, control=32,
                                      value=spec.bank & 127, time=0))
        track.append(mido.Message("program_change", channel=channel, program=spec.program, time=0))
        events: list[tuple[int, int, mido.Message]] = []
        for n in score.notes_of(inst):
            on = round(n.start / _SECONDS_PER_TICK)
            off = round(n.end / _SECONDS_PER_TICK)
            events.append((on, 1, mido.Message("note_on", channel=channel, note=n.pitch,
                                               velocity=n.velocity)))
            events.append((off, 0, mido.Message("note_off", channel=channel, note=n.pitch,
                                                velocity=0)))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    return mid
