"""``chords``: a progression played as block chords or arpeggios, with a melody and a bass."""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest
from instrlab.scores.theory import (
    Piece,
    chord_tones,
    draw_piece,
    entry,
    is_bass,
    line,
    plays_chords,
    rhythm,
    velocity,
)

MELODY_VALUES = (0.25, 0.5, 1.0, 2.0, 3.0)
MELODY_WEIGHTS = (1.5, 2.0, 4.0, 2.0, 0.5)
BASS_VALUES = (1.0, 2.0, 4.0)
BASS_WEIGHTS = (2.0, 3.0, 1.0)


def _chord_notes(req: ScoreRequest, piece: Piece, inst: int, lo: int, hi: int,
                 start: float) -> list[Note]:
    """Block chords (one per half bar or bar) or arpeggios (eighths or sixteenths)."""
    clip = req.cfg.clip_seconds
    arpeggio = bool(req.rng.random() < 0.5)
    step = piece.beat * (float(req.rng.choice((0.5, 0.25))) if arpeggio
                         else piece.bar_beats / float(req.rng.choice((1, 2))))
    far = req.reach(lo, hi)
    # where in the reach an arpeggio lies (drawn only with a reach, so span 0 keeps its notes)
    low = float(req.rng.random()) if req.cfg.music_span else 0.0
    notes: list[Note] = []
    t, k = start, 0
    while t < clip:
        tones = chord_tones(far, piece.chord_at(t))
        vel = velocity(req, piece, inst, t)
        if arpeggio:
            first = int(low * max(0, len(tones) - 4))
            pattern = tones[first: first + min(4, len(tones))]
            pitch = pattern[k % len(pattern)] if k % (2 * len(pattern)) < len(pattern) \
                else pattern[-1 - k % len(pattern)]
            notes.append(Note(inst, pitch, vel, t, t + step * float(req.rng.uniform(0.9, 2.0))))
        else:
            top = int(req.rng.integers(min(3, len(tones)), len(tones) + 1))
            notes += [Note(inst, p, vel, t, t + step * 0.95) for p in tones[max(0, top - 3):top]]
        t += step
        k += 1
    return notes


@score_generators.register("chords")
def chords(req: ScoreRequest) -> list[Note]:
    """One progression: instruments that play chords (piano, organ, guitar, celesta,
    strings, pads) take block chords or arpeggios, basses the roots, the rest a melody."""
    piece = draw_piece(req)
    clip = req.cfg.clip_seconds
    notes: list[Note] = []
    for inst in req.instruments:
        lo, hi = req.pitch_bounds(inst)
        program = req.spec(inst).program
        start = entry(req, piece, latest_share=0.2)
        if plays_chords(program) and req.rng.random() < 0.8:
            notes += _chord_notes(req, piece, inst, lo, hi, start)
        elif is_bass(program):
            onsets = rhythm(req.rng, BASS_VALUES, BASS_WEIGHTS, clip, piece.beat, start)
            notes += line(req, piece, inst, lo, hi, onsets, legato=0.9)
        else:
            onsets = rhythm(req.rng, MELODY_VALUES, MELODY_WEIGHTS, clip, piece.beat, start)
            notes += line(req, piece, inst, lo, hi, onsets, float(req.rng.uniform(0.7, 1.0)))
    return notes
