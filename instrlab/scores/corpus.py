"""``corpus``: excerpts of real music from the music21 package's bundled corpus, for
evaluation only.

A fixed list of string quartet movements by Haydn, Mozart and Beethoven (no J. S. Bach:
his works are held back for judging). A clip takes one movement with at least as many
parts as the clip has instruments, gives each drawn instrument one of its parts, moves
each part by whole octaves so that its median pitch lies in the seed's 60..72, and plays
a 5 s excerpt at 120 bpm in which every chosen part sounds. Bundled corpora are never
trained on (:func:`instrlab.scores.base.check_trainable`): they judge what training on
generated scores learnt.

Parsing the movements takes about half a minute on one core, so they are parsed over the
cores and the parsed notes are kept under the cache directory, named by the music21
version and the list.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing as mp
import os
import warnings

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreGenerator, ScoreRequest
from instrlab.scores.parse_cache import cached_json

QUARTETS = tuple(
    f"{work}/movement{m}.mxl"
    for work in ("haydn/opus74no1", "mozart/k458", "mozart/k80", "beethoven/opus18no1")
    for m in (1, 2, 3, 4)
)
"""Sixteen string quartet movements, four parts each."""
SECONDS_PER_QUARTER = 0.5  # 120 bpm
MIDDLE = (60, 72)  # each part's median pitch is moved by octaves into this range
TRIES = 64

Part = list[tuple[int, float, float]]
"""(pitch, start, end) of one part's notes, in quarter notes from the movement's start."""


def _parse(path: str) -> list[Part]:
    """The parts of one corpus file: every sounding pitch (chords split, ties joined)."""
    from music21 import corpus

    with warnings.catch_warnings():  # music21's notes on overfull measures of the editions
        warnings.simplefilter("ignore")
        score = corpus.parse(path)
    parts = []
    for part in score.parts:
        notes = []
        for n in part.stripTies().flatten().notes:
            start, length = float(n.offset), float(n.quarterLength)
            if length > 0:  # grace notes have no length
                notes += [(int(p.midi), start, start + length) for p in n.pitches]
        if notes:
            parts.append(sorted(notes, key=lambda x: (x[1], x[0])))
    return parts


def _music21_version() -> str:
    try:
        import music21
    except ImportError:
        raise InstrlabError("the real-music evaluation reads music21's corpus, and music21 is "
                            "not installed; run scripts/setup.sh (or pip install music21), or "
                            "turn the figure off with --heldout-music none") from None
    return str(music21.__version__)


def _parse_all(pieces: tuple[str, ...]) -> dict[str, list[Part]]:
    """Every piece parsed, over the cores (music21 parses in Python, so processes, not
    threads); sequentially in a dataset worker, which may not start processes and finds
    the parent's cache file anyway. The result does not depend on the number of cores."""
    n = min(len(pieces), os.cpu_count() or 1)
    if n <= 1 or mp.parent_process() is not None:
        return {p: _parse(p) for p in pieces}
    with mp.get_context("spawn").Pool(n) as pool:  # as the dataset build's workers
        return dict(zip(pieces, pool.map(_parse, pieces, chunksize=1)))


@functools.lru_cache(maxsize=4)
def load_corpus(pieces: tuple[str, ...] = QUARTETS) -> dict[str, list[Part]]:
    """The parsed parts of ``pieces`` (corpus paths), from the cache when it holds them."""
    version = _music21_version()
    digest = hashlib.sha256(json.dumps([version, pieces]).encode()).hexdigest()[:16]
    return cached_json(f"corpus/music21-{digest}.json", lambda: _parse_all(pieces))


def excerpt(req: ScoreRequest, parts: list[Part], seconds: float) -> list[Note] | None:
    """Notes of one excerpt giving ``req.instruments`` distinct parts, or None when a
    drawn window leaves a chosen part silent."""
    rng = req.rng
    k = len(req.instruments)
    chosen = [parts[int(i)] for i in rng.choice(len(parts), size=k, replace=False)]
    quarters = seconds / SECONDS_PER_QUARTER
    end = max(n[2] for p in chosen for n in p)
    start = float(rng.integers(0, max(1, int(end - quarters))))
    notes = []
    for inst, part in zip(req.instruments, chosen):
        inside = [n for n in part if n[1] < start + quarters and n[2] > start]
        if not inside or all(n[1] >= start + quarters - 0.6 for n in inside):
            return None  # silent, or only a note in the last 0.3 s
        median = float(np.median([n[0] for n in inside]))
        # the fewest whole octaves that bring the median into MIDDLE (0 when it is there)
        shift = 12 * (max(0, int(np.ceil((MIDDLE[0] - median) / 12)))
                      - max(0, int(np.ceil((median - MIDDLE[1]) / 12))))
        vel = req.velocity(inst, 0.6)
        notes += [Note(inst, min(127, max(0, p + shift)), vel,
                       max(0.0, (s - start) * SECONDS_PER_QUARTER),
                       (e - start) * SECONDS_PER_QUARTER) for p, s, e in inside]
    return notes


def corpus_generator(pieces: tuple[str, ...], doc: str) -> ScoreGenerator:
    """A score generator of excerpts of ``pieces`` (corpus paths), for evaluation only;
    ``doc`` describes it in `instrlab list`."""

    def generate(req: ScoreRequest) -> list[Note]:
        movements = [parts for parts in load_corpus(pieces).values()
                     if len(parts) >= len(req.instruments)]
        if not movements:
            raise InstrlabError(f"no corpus piece has {len(req.instruments)} parts; lower "
                                "max_instruments")
        for _ in range(TRIES):
            parts = movements[int(req.rng.integers(0, len(movements)))]
            notes = excerpt(req, parts, req.cfg.clip_seconds)
            if notes is not None:
                return notes
        raise InstrlabError(f"no excerpt of the corpus sounds in all {len(req.instruments)} "
                            f"parts after {TRIES} tries; shorten clip_seconds or pick pieces")

    generate.__doc__ = doc
    generate.evaluation_only = True  # type: ignore[attr-defined]
    generate.prepare = lambda cfg, iset: load_corpus(pieces)  # type: ignore[attr-defined]
    return generate


score_generators.register("corpus", corpus_generator(
    QUARTETS, "Real music, for evaluation only: 5 s of 16 string quartet movements (Haydn, "
    "Mozart, Beethoven) from music21's corpus, each part moved by octaves into 60..72."))
