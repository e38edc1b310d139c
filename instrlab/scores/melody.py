"""``melody``: each instrument plays a line in one shared key and tempo, the parts overlapping."""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest
from instrlab.scores.theory import draw_piece, entry, line, rhythm

VALUES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # note lengths in beats
WEIGHTS = (2.0, 3.0, 4.0, 1.0, 2.0, 0.5, 0.5)


@score_generators.register("melody")
def melody(req: ScoreRequest) -> list[Note]:
    """Melodic lines: steps of the scale and some leaps, varied rhythms, mostly legato, each
    instrument entering on a beat within the first third of the clip."""
    piece = draw_piece(req)
    notes: list[Note] = []
    for inst in req.instruments:
        lo, hi = req.pitch_bounds(inst)
        onsets = rhythm(req.rng, VALUES, WEIGHTS, req.cfg.clip_seconds, piece.beat,
                        entry(req, piece))
        legato = float(req.rng.uniform(0.6, 1.0))
        notes += line(req, piece, inst, lo, hi, onsets, legato)
    return notes
