"""``paced_random``: random notes like the seed's, each instrument at a pace of its own."""

from __future__ import annotations

import math

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest

NOTES_PER_SECOND = (0.5, 8.0)
"""Each instrument's pace in a clip, drawn log-uniformly: a held note every two seconds
to running sixteenths at 120 bpm."""
LEGATO = (0.3, 1.0)
"""The share of each note's slot that sounds, drawn per instrument: staccato to legato."""
MIN_NOTE_SECONDS = 0.08


@score_generators.register("paced_random")
def paced_random(req: ScoreRequest) -> list[Note]:
    """Random pitches and velocities in each instrument's range, at a pace and articulation
    drawn per instrument and clip (0.5..8 notes per second, staccato to legato), so that how
    many notes sound says nothing of how many instruments play. With the seed's five notes
    each, a model learns to count onsets, and names five instruments in dense music."""
    clip = req.cfg.clip_seconds
    notes: list[Note] = []
    for inst in req.instruments:
        lo, hi = req.pitch_bounds(inst)
        vlo, vhi = req.spec(inst).velocity_range
        rate = math.exp(float(req.rng.uniform(*(math.log(r) for r in NOTES_PER_SECOND))))
        legato = float(req.rng.uniform(*LEGATO))
        t = float(req.rng.uniform(0.0, min(1.0 / rate, clip - MIN_NOTE_SECONDS)))
        while t < clip:
            slot = float(req.rng.uniform(0.5, 1.5)) / rate
            pitch = int(req.rng.integers(lo, hi + 1))
            vel = int(req.rng.integers(vlo, vhi + 1))
            notes.append(Note(inst, pitch, vel, t, t + max(MIN_NOTE_SECONDS, slot * legato)))
            t += slot
    return notes
