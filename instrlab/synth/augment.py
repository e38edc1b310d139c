"""Audio augmentations for robustness to other soundfonts, deterministic per sample.

Every draw comes from a random stream of its own, seeded by the sample's seed, so the
scores (and therefore the labels) do not change when augmentations are switched on, and
a sample's augmented audio is the same whichever process renders it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from instrlab.errors import InstrlabError

STREAM = 0xA06  # random stream of augmentations, apart from the score's
STEM_EQ_STREAM = 0xE0  # stem EQ draws: adding them leaves the older options' draws alone
CHOICE_STREAM = 0xC1  # whether a clip is augmented at all (``prob``)
VOICING_STREAM = 0x70  # SoundFont generator offsets per stem
TRANSPOSE_STREAM = 0x7A  # semitone shifts per stem
STEM_TILT_STREAM = 0x71  # spectral tilt per stem
FORMANT_STREAM = 0x74  # formant (sample-body) shift per stem
BLEND_STREAM = 0xB1E2D  # family blends: a stream of the sample's seed and this alone

# SoundFont 2.01 generators (section 8.1.3) varied by ``voicing``, with the range of the
# offset FluidSynth adds to the preset's own value at voicing = 1: (id, low, high).
VOICING_GENERATORS = {
    "vib_lfo_to_pitch": (6, 0.0, 25.0),  # cents of vibrato
    "filter_fc": (8, -3600.0, 0.0),  # cents: up to three octaves darker
    "filter_q": (9, 0.0, 60.0),  # centibels of resonance
    "vol_env_attack": (34, -1200.0, 1200.0),  # timecents: x0.5..x2
    "vol_env_decay": (36, -1200.0, 1200.0),
    "vol_env_sustain": (37, 0.0, 120.0),  # centibels of extra decay
    "vol_env_release": (38, -1200.0, 1200.0),
}
EQ_LOW_HZ, EQ_HIGH_HZ = 50.0, 16000.0  # the stem EQ's control points span this band


# (field, low, high) of the options whose only rule is a closed range
_RANGES = (("gain_db", 0, 40), ("tilt_db", 0, 12), ("reverb_prob", 0, 1), ("voicing", 0, 1),
           ("transpose", 0, 24), ("formant_shift", 0, 12), ("prob", 0, 1),
           ("stem_eq_db", 0, 40), ("stem_tilt_db", 0, 12), ("stem_eq_knots", 2, 64),
           ("lowpass_prob", 0, 1), ("family_blend", 0, 1))


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
    stem_eq_db: float = 0.0
    """Each instrument gets its own smooth random EQ within +-stem_eq_db dB: a stand-in
    for another soundfont's recording of the same instrument."""
    stem_eq_knots: int = 8
    """Control points of the stem EQ, log-spaced from 50 Hz to 16 kHz."""
    stem_tilt_db: float = 0.0
    """Each instrument is also tilted by U(-stem_tilt_db, +stem_tilt_db) dB per octave
    around 1 kHz: a darker or brighter recording (another soundfont's piano may sit an
    octave lower in spectral centroid)."""
    formant_shift: int = 0
    """Render each instrument up to +-formant_shift semitones off pitch and resample its
    stem back to the written pitch: the sample's spectral envelope and its attack and decay
    times move with it, as from a larger or smaller instrument (vocal tract length
    perturbation, for instruments)."""
    voicing: float = 0.0
    """Vary each instrument's SoundFont voicing (envelope times, filter cutoff and
    resonance, vibrato) by this share (0..1) of :data:`VOICING_GENERATORS`' ranges: another
    soundfont's take on the same preset. Needs a synth that takes generator offsets."""
    transpose: int = 0
    """Move each instrument's notes by up to +-transpose semitones (one draw per
    instrument), so other sample zones of the soundfont sound: more takes on its timbre."""
    prob: float = 1.0
    """Share of (training) clips augmented; the others are rendered clean."""
    train_only: bool = True
    """Augment only clips of the training split: validation and test clips stay clean, so
    model selection and the test figures measure the protocol itself."""
    lowpass_prob: float = 0.0
    """Share of clips band-limited at a cutoff drawn log-uniformly from ``lowpass_hz``: a
    sample set stored at a lower rate (many GM soundfonts keep 22..32 kHz samples)."""
    lowpass_hz: tuple[float, float] = (4000.0, 16000.0)
    """Range of that cutoff in Hz; above it the mix falls by 48 dB per octave."""
    family_blend: float = 0.0
    """Share of each clip's instruments rendered by a second soundfont as well (drawn among
    the others the instrument may use) and mixed with the first rendering at a weight of
    U(0.25, 0.75), the second scaled to the first's loudness: timbres between the sample
    families. Needs two or more soundfonts."""

    def validate(self) -> None:
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not low <= value <= high:
                raise InstrlabError(f"augment {name} must be in {low}..{high}, got {value}")
        lo, hi = self.reverb_seconds
        if not 0 < lo <= hi <= 10:
            raise InstrlabError(
                f"augment reverb_seconds must satisfy 0 < low <= high <= 10, got {lo}..{hi}"
            )
        lo, hi = self.lowpass_hz
        if not 100 <= lo <= hi <= 22050:
            raise InstrlabError(
                f"augment lowpass_hz must satisfy 100 <= low <= high <= 22050, got {lo}..{hi}"
            )
        if self.noise_snr_db is not None:
            lo, hi = self.noise_snr_db
            if not -10 <= lo <= hi <= 100:
                raise InstrlabError(
                    f"augment noise_snr_db must satisfy -10 <= low <= high <= 100, got {lo}..{hi}"
                )

    @property
    def shapes_stems(self) -> bool:
        """Whether each stem gets its own EQ curve (:func:`stem_eq_curves`)."""
        return bool(self.stem_eq_db or self.stem_tilt_db)

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.tilt_db or self.reverb_prob or self.noise_snr_db
                    or self.shapes_stems or self.voicing or self.transpose
                    or self.formant_shift or self.lowpass_prob or self.family_blend)


def augments_clip(cfg: AugmentConfig, sample_seed: int, in_train_split: bool) -> bool:
    """Whether a clip is augmented: options on, split allowed, and its ``prob`` draw."""
    if not cfg.active or (cfg.train_only and not in_train_split):
        return False
    if cfg.prob >= 1:
        return True
    rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM, CHOICE_STREAM]))
    return bool(rng.random() < cfg.prob)


def augment_rng(sample_seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM]))


def stem_gains_db(cfg: AugmentConfig, rng: np.random.Generator, n_stems: int) -> list[float]:
    """Extra per-instrument gains (dB) for :func:`instrlab.synth.mixing.mix_stems`."""
    if not cfg.gain_db:
        return [0.0] * n_stems
    return [float(g) for g in rng.uniform(-cfg.gain_db, cfg.gain_db, n_stems)]


def stem_eq_curves(cfg: AugmentConfig, sample_seed: int, n_stems: int) -> np.ndarray:
    """Control-point gains (n_stems, knots) in dB for :func:`smooth_eq`: random points
    within +-stem_eq_db plus a random tilt per stem; zeros when both are off."""
    curves = np.zeros((n_stems, cfg.stem_eq_knots))
    if cfg.stem_eq_db:
        rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM,
                                                            STEM_EQ_STREAM]))
        curves += rng.uniform(-cfg.stem_eq_db, cfg.stem_eq_db, curves.shape)
    if cfg.stem_tilt_db:
        rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM,
                                                            STEM_TILT_STREAM]))
        octaves = np.log2(eq_points_hz(cfg.stem_eq_knots) / 1000.0)
        curves += rng.uniform(-cfg.stem_tilt_db, cfg.stem_tilt_db, (n_stems, 1)) * octaves
    return curves


def eq_points_hz(knots: int) -> np.ndarray:
    """Frequencies of the stem EQ's control points: log-spaced from 50 Hz to 16 kHz."""
    return np.geomspace(EQ_LOW_HZ, EQ_HIGH_HZ, knots)


def transpositions(cfg: AugmentConfig, sample_seed: int, n_stems: int) -> list[int]:
    """Semitones each stem's notes move by; zeros when ``transpose`` is off."""
    if not cfg.transpose:
        return [0] * n_stems
    rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM, TRANSPOSE_STREAM]))
    return [int(k) for k in rng.integers(-cfg.transpose, cfg.transpose + 1, n_stems)]


def formant_shifts(cfg: AugmentConfig, sample_seed: int, n_stems: int) -> list[int]:
    """Semitones each stem is rendered off pitch and resampled back; zeros when off."""
    if not cfg.formant_shift:
        return [0] * n_stems
    rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM, FORMANT_STREAM]))
    return [int(k) for k in rng.integers(-cfg.formant_shift, cfg.formant_shift + 1, n_stems)]


def family_blends(cfg: AugmentConfig, sample_seed: int, others: list[list[int]]
                  ) -> list[tuple[int, float] | None]:
    """Per stem, the soundfont (one of ``others[j]``) blended into it and the first
    rendering's weight, or None (``family_blend``); three draws per stem either way."""
    rng = np.random.default_rng(np.random.SeedSequence([sample_seed, BLEND_STREAM]))
    out: list[tuple[int, float] | None] = []
    for options in others:
        u, weight, pick = rng.random(), float(rng.uniform(0.25, 0.75)), int(rng.integers(1 << 30))
        out.append((options[pick % len(options)], weight)
                   if u < cfg.family_blend and options else None)
    return out


def voicing_offsets(cfg: AugmentConfig, sample_seed: int, n_stems: int
                    ) -> list[dict[int, float]]:
    """Per stem, SoundFont generator id -> offset; empty dicts when ``voicing`` is off."""
    if not cfg.voicing:
        return [{} for _ in range(n_stems)]
    rng = np.random.default_rng(np.random.SeedSequence([sample_seed, STREAM, VOICING_STREAM]))
    return [{gen: float(rng.uniform(lo, hi)) * cfg.voicing
             for gen, lo, hi in VOICING_GENERATORS.values()} for _ in range(n_stems)]


def smooth_eq(audio: np.ndarray, knots_db: np.ndarray, sample_rate: int) -> np.ndarray:
    """Zero-phase EQ: gains ``knots_db`` at log-spaced points from 50 Hz to 16 kHz,
    interpolated linearly in log frequency and held flat beyond the ends."""
    if not np.any(knots_db):
        return audio
    import scipy.fft  # here, not at the top: AugmentConfig is read by --help, scipy costs 1 s

    spec = scipy.fft.rfft(np.asarray(audio, np.float32))  # float32: half the cost of float64
    points = np.log2(eq_points_hz(len(knots_db)))
    gain_db = np.interp(_log2_bins(len(audio), sample_rate), points, knots_db)
    spec *= np.exp(gain_db.astype(np.float32) * np.float32(np.log(10) / 20))
    return scipy.fft.irfft(spec, n=len(audio)).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def _log2_bins(n: int, sample_rate: int) -> np.ndarray:
    """log2 of the rfft bin frequencies of an ``n``-sample signal (DC clamped to 1 Hz)."""
    import scipy.fft

    return np.log2(np.maximum(scipy.fft.rfftfreq(n, 1.0 / sample_rate), 1.0))


def tilt(audio: np.ndarray, db_per_octave: float, sample_rate: int) -> np.ndarray:
    """Apply a spectral tilt of ``db_per_octave`` around 1 kHz."""
    spec = np.fft.rfft(audio.astype(np.float64))
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    spec *= 10 ** (db_per_octave * octaves / 20)
    return np.fft.irfft(spec, n=len(audio))


def lowpass(audio: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Cut everything above ``cutoff_hz`` by 48 dB per octave (floored at -120 dB)."""
    spec = np.fft.rfft(audio.astype(np.float64))
    octaves = np.log2(np.maximum(np.fft.rfftfreq(len(audio), 1.0 / sample_rate), 1.0)
                      / cutoff_hz)
    spec *= 10 ** (np.maximum(-48.0 * np.clip(octaves, 0.0, None), -120.0) / 20)
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
        from scipy.signal import fftconvolve

        out = fftconvolve(out, synthetic_room(drawn["rt60"], sample_rate, rng))[: len(audio)]
    if cfg.noise_snr_db is not None:
        drawn["snr_db"] = float(rng.uniform(*cfg.noise_snr_db))
        power = np.mean(out**2)
        if power > 0:
            scale = np.sqrt(power / 10 ** (drawn["snr_db"] / 10))
            out = out + rng.standard_normal(len(out)) * scale
    if cfg.lowpass_prob and rng.random() < cfg.lowpass_prob:
        lo, hi = np.log(cfg.lowpass_hz)
        drawn["lowpass_hz"] = float(np.exp(rng.uniform(lo, hi)))
        out = lowpass(out, drawn["lowpass_hz"], sample_rate)
    return out.astype(np.float32), drawn
