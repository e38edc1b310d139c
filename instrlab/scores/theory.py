"""What the music generators share: a key, a tempo, a chord progression, lines, dynamics.

Plain functions of a random generator, so each generator stays deterministic per clip
seed. Deliberately small: common-practice keys and triads are enough to give the model
legato lines, chords and parts that move together, which random notes never have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instrlab.scores.base import Note, ScoreRequest

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}
# scale degree (0-based) -> the degrees that usually follow it in simple tonal harmony
PROGRESSIONS = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5), 5: (1, 3),
                6: (0,)}
CHORD_PROGRAMS = ((0, 24), (48, 56), (88, 96))
"""General MIDI program ranges whose instruments play chords: pianos, chromatic
percussion, organs, guitars (0..23, 24..31), string ensembles (48..55) and synth pads."""
BASS_PROGRAMS = (32, 40)


def plays_chords(program: int) -> bool:
    """Whether an instrument of this General MIDI program plays chords (piano, organ,
    guitar, celesta, string ensemble, pad)."""
    return any(lo <= program < hi for lo, hi in CHORD_PROGRAMS)


def is_bass(program: int) -> bool:
    return BASS_PROGRAMS[0] <= program < BASS_PROGRAMS[1]


@dataclass(frozen=True)
class Key:
    """A tonic pitch class and a mode."""

    tonic: int
    steps: tuple[int, ...]

    def pitches(self, lo: int, hi: int) -> list[int]:
        """The scale's MIDI pitches within ``lo..hi``."""
        return [p for p in range(lo, hi + 1) if (p - self.tonic) % 12 in self.steps]

    def chord(self, degree: int) -> set[int]:
        """The pitch classes of the triad on scale ``degree``."""
        n = len(self.steps)
        return {(self.tonic + self.steps[(degree + k) % n]) % 12 for k in (0, 2, 4)}


@dataclass(frozen=True)
class Piece:
    """The frame every part of one clip shares: key, tempo, harmony, dynamics."""

    key: Key
    beat: float
    """Seconds per beat."""
    chords: tuple[int, ...]
    """Scale degree of the chord on each bar."""
    bar_beats: int
    level: float
    """Overall loudness, 0..1 of each instrument's velocity range."""

    def chord_at(self, seconds: float) -> set[int]:
        bar = int(seconds / (self.beat * self.bar_beats))
        return self.key.chord(self.chords[min(bar, len(self.chords) - 1)])


def draw_piece(req: ScoreRequest, tempo: tuple[float, float] = (60.0, 160.0)) -> Piece:
    """A key, a tempo in ``tempo`` bpm, a bar length and a chord per bar covering the clip."""
    rng = req.rng
    mode = list(MODES)[int(rng.integers(0, len(MODES)))]
    key = Key(int(rng.integers(0, 12)), MODES[mode])
    beat = 60.0 / float(rng.uniform(*tempo))
    bar_beats = int(rng.choice((2, 3, 4)))
    n_bars = int(np.ceil(req.cfg.clip_seconds / (beat * bar_beats))) + 1
    chords = [0]
    for _ in range(n_bars - 1):
        options = PROGRESSIONS[chords[-1]]
        chords.append(int(options[int(rng.integers(0, len(options)))]))
    return Piece(key, beat, tuple(chords), bar_beats, float(rng.uniform(0.15, 0.95)))


def rhythm(rng: np.random.Generator, values: tuple[float, ...], weights: tuple[float, ...],
           seconds: float, beat: float, start: float = 0.0) -> list[tuple[float, float]]:
    """Onsets and lengths (seconds) of notes whose lengths in beats are drawn from ``values``,
    back to back from ``start`` until ``seconds``."""
    p = np.asarray(weights, dtype=float) / sum(weights)
    out, t = [], start
    while t < seconds:
        length = float(values[int(rng.choice(len(values), p=p))]) * beat
        out.append((t, length))
        t += length
    return out


def level(req: ScoreRequest, piece: Piece, t: float, spread: float = 0.15) -> float:
    """The piece's loudness (0..1) at time ``t``: a swell across the clip and a little accent
    noise."""
    swell = 0.1 * np.sin(np.pi * t / max(req.cfg.clip_seconds, 1e-6))
    return piece.level + swell + float(req.rng.normal(0, spread / 2))


def velocity(req: ScoreRequest, piece: Piece, instrument: int, t: float) -> int:
    """``instrument``'s velocity at the piece's :func:`level` at time ``t``."""
    return req.velocity(instrument, level(req, piece, t))


def chord_tones(pitches: range, chord: set[int]) -> list[int]:
    """The pitches of ``pitches`` whose pitch class is in ``chord`` (all of them if none is)."""
    return [p for p in pitches if p % 12 in chord] or list(pitches)


def nearest(pitches: list[int], target: float) -> int:
    """The pitch of ``pitches`` closest to ``target`` (the lower one on a tie)."""
    return min(pitches, key=lambda p: (abs(p - target), p))


def line(req: ScoreRequest, piece: Piece, instrument: int, lo: int, hi: int,
         onsets: list[tuple[float, float]], legato: float,
         chord_tones_on_beats: bool = True) -> list[Note]:
    """A melodic line over ``onsets``: mostly steps of the scale, sometimes a leap, starting
    inside ``lo..hi`` and turning back at the edges of its ``req.reach``; notes on a bar's
    first beat prefer chord tones.
    ``legato`` is the share of each onset interval a note holds (1: no gap)."""
    rng = req.rng
    far = req.reach(lo, hi)
    scale = piece.key.pitches(far.start, far.stop - 1) or list(far)
    inside = [k for k, p in enumerate(scale) if lo <= p <= hi] or list(range(len(scale)))
    i = inside[int(rng.integers(0, len(inside)))]
    direction = 1 if rng.random() < 0.5 else -1
    notes = []
    for t, length in onsets:
        if rng.random() < 0.08 and notes:  # a rest
            continue
        r = rng.random()
        step = 1 if r < 0.55 else 2 if r < 0.8 else 0 if r < 0.88 else int(rng.integers(3, 6))
        if rng.random() < 0.3:
            direction = -direction
        i += direction * step
        if i < 0 or i >= len(scale):
            direction = -direction
            i = min(len(scale) - 1, max(0, i + 2 * direction * step))
        pitch = scale[i]
        bar_start = round(t / piece.beat, 6) % piece.bar_beats == 0  # sums of beats drift
        if chord_tones_on_beats and bar_start:
            tones = [p for p in scale if p % 12 in piece.chord_at(t)]
            if tones:
                pitch = nearest(tones, pitch)
                i = scale.index(pitch)
        notes.append(Note(instrument, pitch, velocity(req, piece, instrument, t), t,
                          t + max(0.05, legato * length)))
    return notes


def entry(req: ScoreRequest, piece: Piece, latest_share: float = 0.3) -> float:
    """When a part comes in: on a beat, within the first ``latest_share`` of the clip."""
    beats = int(latest_share * req.cfg.clip_seconds / piece.beat)
    return piece.beat * int(req.rng.integers(0, beats + 1)) if beats > 0 else 0.0
