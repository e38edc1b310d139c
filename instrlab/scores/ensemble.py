"""``ensemble``: parts that move together, one rhythm and one chord at a time, as a hymn."""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest
from instrlab.scores.theory import chord_tones, draw_piece, level, nearest, rhythm

VALUES = (0.5, 1.0, 2.0)
WEIGHTS = (1.0, 4.0, 1.5)


@score_generators.register("ensemble")
def ensemble(req: ScoreRequest) -> list[Note]:
    """Homophony: every part sounds on the same onsets, each holding a tone of the chord
    nearest its previous pitch (smooth voice leading), highest part on top."""
    piece = draw_piece(req, tempo=(50.0, 120.0))
    onsets = rhythm(req.rng, VALUES, WEIGHTS, req.cfg.clip_seconds, piece.beat)
    legato = float(req.rng.uniform(0.8, 1.0))
    bounds = {inst: req.pitch_bounds(inst) for inst in req.instruments}
    current = {inst: float(req.rng.uniform(lo, hi)) for inst, (lo, hi) in bounds.items()}
    reach = {inst: req.reach(lo, hi) for inst, (lo, hi) in bounds.items()}
    notes: list[Note] = []
    for t, length in onsets:
        chord = piece.chord_at(t)
        loud = level(req, piece, t)
        for inst in req.instruments:
            tones = chord_tones(reach[inst], chord)
            pitch = nearest(tones, current[inst] + float(req.rng.normal(0, 1.5)))
            current[inst] = pitch
            notes.append(Note(inst, pitch, req.velocity(inst, loud), t, t + legato * length))
    return notes
