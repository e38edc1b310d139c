"""Bringing instrument stems to a common loudness and mixing them.

FluidSynth's raw level differs about tenfold between GM programs; without this a model
could tell instruments apart by loudness, and quiet ones (the piano) vanish in a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME = 2048


@dataclass(frozen=True)
class MixConfig:
    """Stem loudness target (active RMS, dBFS) and the mix's peak (dBFS)."""

    stem_rms_db: float = -20.0
    peak_db: float = -1.0
    active_floor_db: float = -50.0


def active_rms_db(x: np.ndarray, floor_db: float = -50.0) -> float:
    """RMS level (dBFS) over the frames that sound, i.e. within ``floor_db`` of the loudest.

    Measuring only where the instrument plays keeps a stem with one short note as loud
    as one that plays all clip long. Silence gives -inf.
    """
    n = len(x) // FRAME * FRAME
    if n == 0:
        frames = np.asarray(x, np.float64)[None, :]
    else:
        frames = np.asarray(x[:n], np.float64).reshape(-1, FRAME)
    power = (frames**2).mean(axis=1)
    top = power.max(initial=0.0)
    if top <= 0:
        return float("-inf")
    active = power[power >= top * 10 ** (floor_db / 10)]
    return float(10 * np.log10(active.mean()))


def mix_stems(
    stems: list[np.ndarray], cfg: MixConfig, extra_gain_db: list[float] | None = None
) -> tuple[np.ndarray, list[float], list[float]]:
    """Normalise each stem to ``cfg.stem_rms_db`` (plus ``extra_gain_db``), sum, set the peak.

    Returns the mix (float32) and, per stem, its raw level and the gain applied (dB).
    """
    levels = [active_rms_db(s, cfg.active_floor_db) for s in stems]
    extra = extra_gain_db or [0.0] * len(stems)
    gains = [
        0.0 if not np.isfinite(lv) else cfg.stem_rms_db - lv + g for lv, g in zip(levels, extra)
    ]
    mix = np.zeros_like(stems[0], dtype=np.float64)
    for stem, g in zip(stems, gains):
        mix += stem.astype(np.float64) * 10 ** (g / 20)
    return normalize_peak(mix, cfg.peak_db), levels, gains


def normalize_peak(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """Scale ``audio`` so its peak is ``peak_db`` dBFS (silence stays silent); float32."""
    audio = np.asarray(audio, np.float64)
    peak = np.abs(audio).max(initial=0.0)
    if peak > 0:
        audio = audio * (10 ** (peak_db / 20) / peak)
    return audio.astype(np.float32)
