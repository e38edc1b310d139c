"""Rendering each instrument's stem of a clip with the augmentations that act before the
mix: voicing, transposed notes, a stem rendered higher or lower and resampled back
(``AugmentConfig.formant_shift``) and a second soundfont blended in (``family_blend``)."""

from __future__ import annotations

import dataclasses
import inspect
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from instrlab.features.base import fit_length
from instrlab.scores import Note, Score
from instrlab.synth.augment import (
    AugmentConfig,
    family_blends,
    formant_shifts,
    transpositions,
    voicing_offsets,
)


@dataclasses.dataclass
class Stems:
    """A clip's stems (one per instrument of the score) and the per-stem draws behind them."""

    audio: list[np.ndarray]
    transpose: list[int]
    formant_shift: list[int]
    blend: list[tuple[int, float] | None]


def render_stems(synths: list[Any], instruments: list[Any], score: Score, choice: list[int],
                 options: list[list[int]], aug: AugmentConfig, sample_rate: int) -> Stems:
    """Each instrument of ``score`` on its soundfont (``choice``, indices of ``synths``);
    ``options[i]``: the soundfonts instrument ``i`` may use, for ``family_blend``."""
    n = len(score.instruments)
    voicing = voicing_offsets(aug, score.seed, n)
    shifts, formants = transpositions(aug, score.seed, n), formant_shifts(aug, score.seed, n)

    def render(j: int, synth: int) -> np.ndarray:
        i, extra = score.instruments[j], ({"generators": voicing[j]} if voicing[j] else {})
        return render_shifted(synths[synth], instruments[i],
                              transposed(score.notes_of(i), shifts[j]), score.clip_seconds,
                              formants[j], sample_rate, **extra)

    stems = [render(j, c) for j, c in enumerate(choice)]
    blends: list[tuple[int, float] | None] = [None] * n
    if aug.family_blend:  # one soundfont leaves no other: every draw is None
        others = [[o for o in options[i] if o != c] for i, c in zip(score.instruments, choice)]
        blends = family_blends(aug, score.seed, others)
        stems = [blended(s, render(j, b[0]), b[1]) if b else s
                 for j, (s, b) in enumerate(zip(stems, blends))]
    return Stems(stems, shifts, formants, blends)


def blended(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """``weight`` of ``first`` and the rest of ``second`` at ``first``'s RMS level."""
    r1, r2 = float(np.sqrt(np.mean(first ** 2))), float(np.sqrt(np.mean(second ** 2)))
    if r1 <= 0 or r2 <= 0:  # a silent rendering has no level to match
        return first
    return weight * first + (1 - weight) * second * (r1 / r2)


def takes_generators(synth: Any) -> bool:
    """Whether a synth backend's ``render_stem`` accepts SoundFont generator offsets."""
    return "generators" in inspect.signature(synth.render_stem).parameters


def render_shifted(synth: Any, instrument: Any, notes: list[Note], seconds: float,
                   semitones: int, sample_rate: int, **kwargs: Any) -> np.ndarray:
    """A stem rendered ``semitones`` off pitch (times stretched to match) and resampled
    back to the written pitch and length: see ``AugmentConfig.formant_shift``."""
    if not semitones:
        return synth.render_stem(instrument, notes, seconds, **kwargs)
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(256)  # < 0.1 cent off
    r = float(ratio)
    # rendered r times higher and r times faster, then stretched r times: written pitch
    moved = [dataclasses.replace(n, start=n.start / r, end=n.end / r) for n in
             transposed(notes, semitones)]
    raw = synth.render_stem(instrument, moved, seconds / r, **kwargs)
    out = resample_poly(raw, ratio.numerator, ratio.denominator)
    return fit_length(out.astype(np.float32), int(round(seconds * sample_rate)))


def transposed(notes: list[Note], semitones: int) -> list[Note]:
    """``notes`` moved by ``semitones``, kept inside MIDI's 0..127."""
    if not semitones:
        return notes
    return [dataclasses.replace(n, pitch=min(127, max(0, n.pitch + semitones))) for n in notes]
