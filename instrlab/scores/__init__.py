"""Scores: what each clip plays, drawn by registered score generators, and its MIDI file.

``seed_random`` is the seed's generator; the others write music (lines, chords, parts
that move together). A plugin adds one with a function and
``@instrlab.registry.score_generators.register("name")``.
"""

from instrlab.scores.base import (
    MUSIC_GENERATORS,
    MUSIC_SPAN,
    SCORES_VERSION,
    SEED_GENERATORS,
    Note,
    Score,
    ScoreConfig,
    ScoreGenerator,
    ScoreRequest,
    check_trainable,
    generate_score,
    quantise,
    sample_seed,
)
from instrlab.scores.midi import score_to_midi

__all__ = ["MUSIC_GENERATORS", "MUSIC_SPAN", "SCORES_VERSION", "SEED_GENERATORS", "Note",
           "Score", "ScoreConfig", "ScoreGenerator", "ScoreRequest", "check_trainable",
           "generate_score", "quantise", "sample_seed", "score_to_midi"]
