"""``sustained``: long held notes and chords, one or two per instrument, overlapping."""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest
from instrlab.scores.theory import chord_tones, draw_piece, nearest, plays_chords, velocity


@score_generators.register("sustained")
def sustained(req: ScoreRequest) -> list[Note]:
    """Held notes of 1.5 s to the clip's length on the piece's chords; instruments that play
    chords hold two or three of its tones."""
    piece = draw_piece(req, tempo=(50.0, 100.0))
    clip = req.cfg.clip_seconds
    notes: list[Note] = []
    for inst in req.instruments:
        lo, hi = req.pitch_bounds(inst)
        t = float(req.rng.uniform(0.0, 0.3 * clip))
        chordal = plays_chords(req.spec(inst).program)
        far = req.reach(lo, hi)
        while t < clip:
            length = float(req.rng.uniform(1.5, max(1.5, clip)))
            tones = chord_tones(far, piece.chord_at(t))
            top = nearest(tones, float(req.rng.uniform(lo, hi)))
            held = [top]
            if chordal:
                below = [p for p in tones if top - 9 <= p < top]
                held += below[-int(req.rng.integers(1, 3)):]
            vel = velocity(req, piece, inst, t)
            notes += [Note(inst, p, vel, t, t + length) for p in held]
            t += length + float(req.rng.uniform(0.0, 0.5))
    return notes
