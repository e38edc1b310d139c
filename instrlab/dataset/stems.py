"""Rendering one instrument's stem off its written pitch: transposed notes, and a stem
rendered higher or lower and resampled back (``AugmentConfig.formant_shift``)."""

from __future__ import annotations

import dataclasses
import inspect
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from instrlab.features.base import fit_length
from instrlab.scores import Note


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
