"""Example Python plugin: ``scales``, a score generator (one function and a decorator).

Each instrument of a clip runs up or down a major scale in even notes from a random
start inside its pitch range, turning at the range's edges. ``--score-generators
seed_random=1 scales=1`` trains on it for half the clips; `instrlab list` shows it.
"""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores import Note, ScoreRequest

MAJOR = (0, 2, 4, 5, 7, 9, 11)


@score_generators.register("scales")
def scales(req: ScoreRequest) -> list[Note]:
    """Scale runs: each instrument climbs or falls a major scale in even notes."""
    notes = []
    for inst in req.instruments:
        lo, hi = req.pitch_bounds(inst)
        tonic = int(req.rng.integers(0, 12))
        pitches = [p for p in range(lo, hi + 1) if (p - tonic) % 12 in MAJOR]
        step = float(req.rng.uniform(0.15, 0.6))
        i, direction, t = int(req.rng.integers(0, len(pitches))), 1, 0.0
        while t < req.cfg.clip_seconds:
            notes.append(Note(inst, pitches[i], req.velocity(inst, 0.7), t, t + step))
            if not 0 <= i + direction < len(pitches):
                direction = -direction
            i = max(0, min(len(pitches) - 1, i + direction))
            t += step
    return notes
