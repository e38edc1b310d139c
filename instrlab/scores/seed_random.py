"""``seed_random``: the seed experiment's scores, random notes with random gaps."""

from __future__ import annotations

from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreRequest


@score_generators.register("seed_random")
def seed_random(req: ScoreRequest) -> list[Note]:
    """The seed's scores: ``notes_per_instrument`` random notes per instrument with
    random gaps and lengths; the first note always sounds inside the clip."""
    cfg = req.cfg
    # the last moment a first note may start and still sound for its minimum length
    latest_first = max(0.0, cfg.clip_seconds - cfg.note_seconds[0])
    notes: list[Note] = []
    for inst in req.instruments:
        spec = req.spec(inst)
        in_register = (cfg.register_share > 0
                       and float(req.register_rng.random()) < cfg.register_share)
        t = 0.0
        for j in range(cfg.notes_per_instrument):
            gap = float(req.rng.uniform(*cfg.gap_seconds))
            dur = float(req.rng.uniform(*cfg.note_seconds))
            pitch = int(req.rng.integers(spec.pitch_range[0], spec.pitch_range[1] + 1))
            if in_register:  # from a stream of its own, so only pitches move
                pitch = int(req.register_rng.integers(spec.wide_range[0],
                                                      spec.wide_range[1] + 1))
            vel = int(req.rng.integers(spec.velocity_range[0], spec.velocity_range[1] + 1))
            start = t + gap
            if j == 0:
                start = min(start, latest_first)
            t = start + dur
            # notes past the clip end are still drawn, so later draws do not depend on the
            # clip length; generate_score drops them
            notes.append(Note(inst, pitch, vel, start, t))
    return notes
