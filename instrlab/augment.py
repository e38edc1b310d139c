"""Audio augmentations for robustness to other soundfonts, deterministic per sample.

Every draw comes from a random stream of its own, seeded by the sample's seed, so the
scores (and therefore the labels) do not change when augmentations are switched on, and
a sample's augmented audio is the same whichever process renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from instrlab.errors import InstrlabError

STREAM = 0xA06  # random stream of augmentations, apart from the score's


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; all zero (the default) leaves the audio untouched."""

    gain_db: float = 0.0
    """Each instrument's level is moved by U(-gain_db, +gain_db) dB before mixing."""
    tilt_db: float = 0.0
    """Spectral tilt of U(-tilt_db, +tilt_db) dB per octave around 1 kHz (a crude EQ)."""
    reverb_prob: float = 0.0
    """Share of clips convolved with a synthetic room (exponentially decaying noise)."""
    reverb_seconds: tuple[float, float] = (0.2, 1.2)
    """Range of the synthetic room's RT60 in seconds."""
    noise_snr_db: tuple[float, float] | None = None
    """Add white noise at an SNR drawn from this range (dB), or none."""

    def validate(self) -> None:
        if not 0 <= self.gain_db <= 40:
            raise InstrlabError(f"augment gain_db must be in 0..40, got {self.gain_db}")
        if not 0 <= self.tilt_db <= 12:
            raise InstrlabError(f"augment tilt_db must be in 0..12, got {self.tilt_db}")
        if not 0 <= self.reverb_prob <= 1:
            raise InstrlabError(f"augment reverb_prob must be in 0..1, got {self.reverb_prob}")
        lo, hi = self.reverb_seconds
        if not 0 < lo <= hi <= 10:
            raise InstrlabError(
                f"augment reverb_seconds must satisfy 0 < low <= high <= 10, got {lo}..{hi}"
            )
        if self.noise_snr_db is not None:
            lo, hi = self.noise_snr_db
            if not -10 <= lo <= hi <= 100:
                raise InstrlabError(
                    f"augment noise_snr_db must satisfy -10 <= low <= high <= 100, got {lo}..{hi}"
                )

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.tilt_db or self.reverb_prob or self.noise_snr_db)


def augment_rng(sample_seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM]))


def stem_gains_db(cfg: AugmentConfig, rng: np.random.Generator, n_stems: int) -> list[float]:
    """Extra per-instrument gains (dB) for :func:`instrlab.mixing.mix_stems`."""
    if not cfg.gain_db:
        return [0.0] * n_stems
    return [float(g) for g in rng.uniform(-cfg.gain_db, cfg.gain_db, n_stems)]


def tilt(audio: np.ndarray, db_per_octave: float, sample_rate: int) -> np.ndarray:
    """Apply a spectral tilt of ``db_per_octave`` around 1 kHz."""
    spec = np.fft.rfft(audio.astype(np.float64))
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    spec *= 10 ** (db_per_octave * octaves / 20)
    return np.fft.irfft(spec, n=len(audio))


def synthetic_room(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: a direct path plus exponentially decaying noise."""
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)  # -60 dB at rt60
    ir = 0.3 * tail / np.sqrt(np.sum(tail**2))
    ir[0] += 1.0
    return ir


def augment_mix(audio: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                sample_rate: int) -> tuple[np.ndarray, dict[str, float]]:
    """EQ, room and noise on a mix; returns the audio (same length) and what was drawn."""
    drawn: dict[str, float] = {}
    out = audio.astype(np.float64)
    if cfg.tilt_db:
        drawn["tilt_db"] = float(rng.uniform(-cfg.tilt_db, cfg.tilt_db))
        out = tilt(out, drawn["tilt_db"], sample_rate)
    if cfg.reverb_prob and rng.random() < cfg.reverb_prob:
        drawn["rt60"] = float(rng.uniform(*cfg.reverb_seconds))
        out = fftconvolve(out, synthetic_room(drawn["rt60"], sample_rate, rng))[: len(audio)]
    if cfg.noise_snr_db is not None:
        drawn["snr_db"] = float(rng.uniform(*cfg.noise_snr_db))
        power = np.mean(out**2)
        if power > 0:
            scale = np.sqrt(power / 10 ** (drawn["snr_db"] / 10))
            out = out + rng.standard_normal(len(out)) * scale
    return out.astype(np.float32), drawn
