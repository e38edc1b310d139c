"""Scores: notes, their configuration, and drawing one clip's score from a generator.

Every sample is generated from its own seed derived from (master seed, sample index),
so any sample can be regenerated alone and dataset shards are independent. A score
generator (registered in :data:`instrlab.registry.score_generators`) writes the notes of
the instruments drawn for a clip; :func:`generate_score` cuts them to the clip, quantises
them to MIDI ticks and checks that every labelled instrument sounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument, InstrumentSet
from instrlab.registry import score_generators

TICKS_PER_BEAT = 960
TEMPO_BPM = 120.0
SECONDS_PER_TICK = 60.0 / TEMPO_BPM / TICKS_PER_BEAT
REGISTER_STREAM = 0x7E6  # random stream of register choices and pitches, apart from the score's
GENERATOR_STREAM = 0x6E6  # random stream of each clip's generator, apart from the score's
SEED_GENERATORS: tuple[tuple[str, float], ...] = (("seed_random", 1.0),)
MUSIC_GENERATORS: tuple[tuple[str, float], ...] = (
    ("seed_random", 0.5), ("paced_random", 0.25), ("melody", 0.075), ("chords", 0.075),
    ("sustained", 0.05), ("ensemble", 0.05))
"""Half the seed's random notes, a quarter random notes at other paces, a quarter music: the
default experiment's training clips (README "Scores")."""
MUSIC_SPAN = 7
"""The default experiment's ``music_span``: a fifth either side of the protocol's range."""
SCORES_VERSION = 2
"""Bumped whenever a built-in generator other than ``seed_random`` (whose notes never
change) writes other notes for the same seed: datasets that draw them are renamed."""
MIDI_MAPS = ("program", "family")


@dataclass(frozen=True)
class ScoreConfig:
    """How scores are drawn; defaults follow the seed experiment."""

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
    generators: tuple[tuple[str, float], ...] = SEED_GENERATORS
    """Score generators and their shares of the clips, ``(name, weight)``: each clip draws
    one (``instrlab list`` shows them). ``seed_random`` alone is the seed's protocol; the
    ``notes_per_instrument``, ``gap_seconds`` and ``note_seconds`` above are its own."""
    music_span: int = 0
    """Semitones a music generator's part may reach beyond the instrument's
    ``pitch_range`` on either side (0: within it). A part still starts inside the range, so
    its middle stays at the protocol's pitches while its line may span more than an octave,
    as real parts do; ``seed_random`` ignores it."""
    midi_files: tuple[str, ...] = ()
    """MIDI files, or directories of them (every ``*.mid``/``*.midi``, sorted, not
    recursive), that the ``midi_files`` generator cuts into clips."""
    midi_map: str = "program"
    """How ``midi_files`` maps a track to an instrument of the set: "program", the one with
    the track's GM program (bank 0); "family", else the first in its GM family (program
    // 8). Tracks left unmapped, and drums, are skipped."""

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
        if not 0 <= self.music_span <= 24:
            raise InstrlabError(f"music_span must be in 0..24 semitones, got {self.music_span}")
        if not 0.5 <= self.clip_seconds <= 600:
            raise InstrlabError(f"clip_seconds must be in 0.5..600, got {self.clip_seconds}")
        names = [name for name, _, _ in self.generator_table()]
        self.validate_midi(names)

    def validate_midi(self, names: list[str]) -> None:
        """The ``midi_files`` generator and its files come together."""
        if self.midi_map not in MIDI_MAPS:
            raise InstrlabError(f"midi_map must be one of {', '.join(MIDI_MAPS)}, got "
                                f"{self.midi_map!r}")
        if "midi_files" in names and not self.midi_files:
            raise InstrlabError("score generator 'midi_files' needs MIDI files: name them "
                                "with --midi-files PATH (files or directories)")
        if self.midi_files and "midi_files" not in names:
            raise InstrlabError("--midi-files is given but no clip draws them; add "
                                "midi_files=1 to --score-generators")

    def prepare(self, iset: InstrumentSet) -> None:
        """Let each generator load what it reads once (a corpus, MIDI files), before
        workers start: its ``prepare(cfg, iset)``."""
        for _, fn, _ in self.generator_table():
            if callable(getattr(fn, "prepare", None)):
                fn.prepare(self, iset)

    def generator_table(self) -> list[tuple[str, Callable[..., Any], float]]:
        """``(name, generator, probability)`` of each generator; unknown names, repeated names
        and weights that are not positive numbers are one-line errors."""
        if not self.generators:
            raise InstrlabError("score generators: none given; name at least one, e.g. "
                                "seed_random=1")
        names = [str(name) for name, _ in self.generators]
        if len(set(names)) != len(names):
            raise InstrlabError(f"score generators {names} repeat a name; give each one once")
        weights = [float(w) for _, w in self.generators]
        for name, w in zip(names, weights):
            if not math.isfinite(w) or w <= 0:
                raise InstrlabError(f"score generator {name!r}: weight {w} must be a positive "
                                    "number, e.g. seed_random=0.5")
        total = sum(weights)
        return [(n, score_generators.get(n), w / total) for n, w in zip(names, weights)]


def check_trainable(cfg: ScoreConfig) -> None:
    """Refuse training data from an evaluation-only generator (a bundled music corpus):
    its pieces judge a model, so no model may learn them."""
    for name, fn, _ in cfg.generator_table():
        if getattr(fn, "evaluation_only", False):
            raise InstrlabError(f"score generator {name!r} is for evaluation only (bundled "
                                "corpora are never trained on); drop it from "
                                "--score-generators, it is scored by --heldout-music")


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


@dataclass
class ScoreRequest:
    """What a score generator is given: the clip's instruments and its random streams.

    A generator returns :class:`Note` s (times in seconds from the clip start, unquantised)
    for the instruments in ``instruments``; every one of them must get a note that starts
    inside the clip. Notes past the clip end are cut by :func:`generate_score`. A generator
    with the attribute ``chooses_instruments = True`` (``midi_files``) ignores
    ``instruments``: the clip's instruments are those its notes play.
    """

    iset: InstrumentSet
    cfg: ScoreConfig
    instruments: tuple[int, ...]
    rng: np.random.Generator
    """The score's stream, after the instrument draw."""
    register_rng: np.random.Generator
    """A stream of its own for register choices (``ScoreConfig.register_share``)."""
    index: int = 0
    """The clip's index in its dataset."""

    def spec(self, instrument: int) -> Instrument:
        return self.iset.instruments[instrument]

    def pitch_bounds(self, instrument: int) -> tuple[int, int]:
        """The pitches ``instrument`` plays in this clip: its register for a
        ``register_share`` of the clip's instruments (drawn from ``register_rng``), else its
        ``pitch_range``."""
        spec = self.spec(instrument)
        share = self.cfg.register_share
        if share > 0 and float(self.register_rng.random()) < share:
            return spec.wide_range
        return spec.pitch_range

    def reach(self, lo: int, hi: int) -> range:
        """The pitches ``lo..hi`` widened by ``music_span`` on each side, within 0..127."""
        span = self.cfg.music_span
        return range(max(0, lo - span), min(127, hi + span) + 1)

    def velocity(self, instrument: int, level: float) -> int:
        """A velocity at ``level`` (0..1) of ``instrument``'s velocity range."""
        lo, hi = self.spec(instrument).velocity_range
        return int(round(lo + min(1.0, max(0.0, level)) * (hi - lo)))


ScoreGenerator = Callable[[ScoreRequest], Iterable[Note]]


def sample_seed(master_seed: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` that depends only on (master seed, index)."""
    ss = np.random.SeedSequence([int(master_seed) & 0xFFFFFFFF, int(index)])
    return int(ss.generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def quantise(seconds: float) -> float:
    """``seconds`` rounded to the nearest MIDI tick."""
    return round(seconds / SECONDS_PER_TICK) * SECONDS_PER_TICK


def pick_generator(cfg: ScoreConfig, seed: int) -> tuple[str, ScoreGenerator]:
    """The generator of the clip with ``seed`` (its own stream; no draw with one)."""
    table = cfg.generator_table()
    if len(table) == 1:
        return table[0][0], table[0][1]
    u = float(np.random.default_rng(np.random.SeedSequence([seed, GENERATOR_STREAM])).random())
    edge = 0.0
    for name, fn, p in table:
        edge += p
        if u < edge:
            return name, fn
    return table[-1][0], table[-1][1]


def generate_score(iset: InstrumentSet, cfg: ScoreConfig, master_seed: int, index: int) -> Score:
    """Draw the score of sample ``index``: instruments, a generator, then its notes.

    Notes starting at or after the clip end are dropped and notes running past it are cut;
    pitches move by ``pitch_shift`` (within 0..127). A generator that leaves a drawn
    instrument silent is an error: no clip is labelled with an instrument it lacks. A
    generator that chooses its instruments labels the clip with those its kept notes play,
    and a clip without any note is an error.
    """
    seed = sample_seed(master_seed, index)
    rng = np.random.default_rng(seed)
    wide = np.random.default_rng(np.random.SeedSequence([seed, REGISTER_STREAM]))
    k = int(rng.integers(cfg.min_instruments, cfg.max_instruments + 1))
    chosen = tuple(sorted(int(i) for i in rng.choice(len(iset), size=k, replace=False)))
    name, generator = pick_generator(cfg, seed)
    raw = generator(ScoreRequest(iset, cfg, chosen, rng, wide, index))
    free = bool(getattr(generator, "chooses_instruments", False))
    end = quantise(cfg.clip_seconds)
    notes = []
    for n in raw:
        if free and not 0 <= n.instrument < len(iset):
            raise InstrlabError(f"score generator {name!r} wrote a note for instrument "
                                f"{n.instrument}, which {iset.name} does not have; fix the "
                                "generator")
        if not free and n.instrument not in chosen:
            raise InstrlabError(f"score generator {name!r} wrote a note for instrument "
                                f"{n.instrument}, which clip {index} did not draw; fix the "
                                "generator")
        if n.start >= cfg.clip_seconds:
            continue
        start_q, end_q = quantise(n.start), min(quantise(n.end), end)
        if end_q > start_q:
            pitch = min(127, max(0, int(n.pitch) + cfg.pitch_shift))
            notes.append(Note(n.instrument, pitch, int(n.velocity), start_q, end_q))
    if free:
        if not notes:
            raise InstrlabError(f"score generator {name!r} wrote no note inside clip {index}; "
                                "fix the generator (a clip needs at least one note)")
        chosen = tuple(sorted({n.instrument for n in notes}))
    silent = set(chosen) - {n.instrument for n in notes}
    if silent:
        raise InstrlabError(f"score generator {name!r} left instruments "
                            f"{[iset.names[i] for i in sorted(silent)]} silent in clip {index}; "
                            "fix the generator (every drawn instrument needs a note inside "
                            "the clip)")
    return Score(index, seed, chosen, tuple(notes), cfg.clip_seconds)
