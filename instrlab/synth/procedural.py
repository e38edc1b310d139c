"""Sample sets synthesised from models of how instruments make sound, written as SoundFonts.

Every sample family that may be trained on comes from a few Debian soundfonts, and for
bass, violin and pads they all share one recording. A model then learns that recording,
not the instrument. This module makes more families without any recording: each General
MIDI program of the set gets a recipe (plucked and struck strings as partials with
pluck-position combs and frequency-dependent decay, bowed strings and reeds as
harmonic sources through body resonances with vibrato, organs as drawbars, ...), and a
family seed draws every recipe's parameters, so seed 1 and seed 2 are two different
"makers". The result is an ordinary .sf2 that FluidSynth plays like an installed
soundfont (see :mod:`instrlab.synth.sf2_write`). Deterministic: the same seed gives the same
bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.instruments import SEED12
from instrlab.paths import cache_dir
from instrlab.synth.sf2_write import Envelope, Preset, Zone, write_soundfont

SR = 44100
NYQUIST_GUARD = 16000.0  # partials above this are left out (no aliasing, as in recordings)
ROOT_STEP = 6  # semitones between samples
RECIPES_VERSION = 1  # part of the file name: a changed recipe is a new family, never a stale file


def midi_hz(key: float) -> float:
    return 440.0 * 2 ** ((key - 69) / 12)


@dataclass(frozen=True)
class Voice:
    """What one recipe returns for one root key: the sample and whether it sustains (loops)."""

    audio: np.ndarray
    sustained: bool


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _vibrato_phase(f0: float, t: np.ndarray, rng: np.random.Generator, rate: float,
                   cents: float, delay: float = 0.0, jitter: float = 0.0) -> np.ndarray:
    """Phase (cycles) of a fundamental with delayed vibrato and slow random pitch wander."""
    depth = cents * np.clip((t - delay) / 0.3, 0, 1) if delay else np.full_like(t, cents)
    dev = depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    if jitter:
        knots = rng.normal(0, jitter, int(t[-1] * 8) + 2)
        dev = dev + np.interp(t * 8, np.arange(len(knots)), knots)
    freq = f0 * 2 ** (dev / 1200)
    return np.cumsum(freq) / SR


def _partials(phase: np.ndarray, f0: float, amps: np.ndarray, t: np.ndarray,
              decays: np.ndarray | None = None, stretch: float = 0.0,
              rng: np.random.Generator | None = None,
              shape: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Sum of partials k = 1.. with amplitudes ``amps``; ``stretch`` is string inharmonicity
    (f_k = k f0 sqrt(1 + B k^2)); ``shape`` maps a partial's frequency (Hz array) to gain,
    evaluated along the vibrato, so partials move through resonances as in a real body."""
    out = np.zeros_like(t)
    freq = np.gradient(phase) * SR if shape is not None else None
    for k, amp in enumerate(amps, start=1):
        ratio = k * np.sqrt(1 + stretch * k * k)
        if ratio * f0 > NYQUIST_GUARD or amp <= 0:
            break
        start = rng.uniform(0, 1) if rng is not None else 0.0
        wave = np.sin(2 * np.pi * (ratio * phase + start))
        gain = amp
        if decays is not None:
            gain = amp * np.exp(-decays[k - 1] * t)
        if freq is not None:
            gain = gain * shape(ratio * freq)
        out += gain * wave
    return out


def _resonances(rng: np.random.Generator, peaks: list[tuple[float, float, float]],
                n_random: int = 0, span: tuple[float, float] = (200, 6000)
                ) -> Callable[[np.ndarray], np.ndarray]:
    """A body: given (centre Hz, width in octaves, gain dB) peaks, plus random ones."""
    peaks = list(peaks)
    for _ in range(n_random):
        peaks.append((float(np.exp(rng.uniform(*np.log(span)))), rng.uniform(0.1, 0.4),
                      rng.uniform(-6, 8)))

    def shape(freq: np.ndarray) -> np.ndarray:
        octs = np.log2(np.maximum(freq, 1.0))
        db = np.zeros_like(octs)
        for centre, width, gain in peaks:
            db += gain * np.exp(-0.5 * ((octs - np.log2(centre)) / width) ** 2)
        return 10 ** (db / 20)

    return shape


def _noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """White noise band-limited to low..high Hz (FFT mask)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < low) | (f > high)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-12)


def _attack(t: np.ndarray, seconds: float) -> np.ndarray:
    return np.clip(t / max(seconds, 1e-4), 0, 1)


# --- recipes: (the family's parameters, this sample's rng, its root key) -> Voice -----------

def _piano(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(3.5)
    k = np.arange(1, 120)
    b = fam["inharm"] * (f0 / 261.6) ** 1.2
    amps = np.abs(np.sin(np.pi * k * fam["hammer"])) / k ** fam["tilt"]
    amps *= np.exp(-k * f0 / fam["bright"])
    decays = fam["decay"] * (f0 / 261.6) ** 0.6 + 0.4 * (k * f0 / 1000) ** 1.5
    out = np.zeros_like(t)
    for cents in (-fam["detune"], fam["detune"]):
        phase = f0 * 2 ** (cents / 1200) * t
        out += _partials(phase, f0, amps, t, decays, b, rng)
    out += 0.05 * _noise(rng, len(t), 50, 400) * np.exp(-t * 40)
    return Voice(out * _attack(t, 0.002), False)


def _plucked(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(3.0)
    k = np.arange(1, 100)
    amps = np.abs(np.sin(np.pi * k * (fam["pluck"] + rng.uniform(-0.02, 0.02)))) / k ** fam["tilt"]
    amps *= np.exp(-k * f0 / fam["bright"])
    decays = fam["decay"] + fam["damp"] * (k * f0 / 500) ** 1.6
    body = _resonances(rng, fam["body"])
    phase = f0 * t
    out = _partials(phase, f0, amps * body(k * f0), t, decays, fam["inharm"], rng)
    out += fam["thump"] * _noise(rng, len(t), 40, 800) * np.exp(-t * 60)
    return Voice(out * _attack(t, 0.003), False)


def _celesta(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(3.0)
    out = np.sin(2 * np.pi * f0 * t) * np.exp(-fam["decay"] * (f0 / 523) ** 0.5 * t)
    for ratio, amp, speed in fam["modes"]:
        if ratio * f0 < NYQUIST_GUARD:
            out += amp * np.sin(2 * np.pi * ratio * f0 * t + rng.uniform(0, 6.3)) * np.exp(
                -speed * t)
    out += fam["strike"] * _noise(rng, len(t), 2000, 12000) * np.exp(-t * 300)
    return Voice(out * _attack(t, 0.001), False)


def _bowed(fam: dict, rng: np.random.Generator, key: int, voices: int) -> Voice:
    f0, t = midi_hz(key), _time(2.6)
    k = np.arange(1, 80)
    amps = 1 / k ** fam["tilt"] * np.exp(-k * f0 / fam["bright"])
    body = _resonances(rng, fam["body"], fam["random_peaks"])
    out = np.zeros_like(t)
    for _ in range(voices):
        phase = _vibrato_phase(f0 * 2 ** (rng.normal(0, fam["spread"]) / 1200), t, rng,
                               rng.uniform(*fam["vib_rate"]), fam["vib_cents"],
                               fam["vib_delay"], fam["jitter"])
        out += _partials(phase, f0, amps, t, None, 0.0, rng, body)
    out += fam["noise"] * _noise(rng, len(t), 1500, 9000) * np.sqrt(voices)
    return Voice(out, True)


def _strings(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    return _bowed(fam, rng, key, fam["voices"])


def _violin(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    return _bowed(fam, rng, key, 1)


def _wind(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    """Flutes, reeds and brass: a harmonic source, vibrato, formants, breath; the upper
    partials enter later than the fundamental (brass) when ``bloom`` > 0."""
    f0, t = midi_hz(key), _time(2.6)
    k = np.arange(1, 60)
    amps = np.asarray(fam["harmonics"](k), float) * np.exp(-k * f0 / fam["bright"])
    formant = _resonances(rng, fam["formants"])
    phase = _vibrato_phase(f0, t, rng, rng.uniform(*fam["vib_rate"]), fam["vib_cents"],
                           fam["vib_delay"], fam["jitter"])
    if fam["scoop"]:
        phase = phase - np.cumsum(f0 * (1 - 2 ** (-fam["scoop"] * np.exp(-t / 0.03) / 1200))) / SR
    out = np.zeros_like(t)
    for kk, amp in zip(k, amps):
        if kk * f0 > NYQUIST_GUARD:
            break
        onset = 1 - np.exp(-t / (0.002 + fam["bloom"] * kk)) if fam["bloom"] else 1.0
        out += amp * onset * formant(np.full(1, kk * f0))[0] * np.sin(
            2 * np.pi * (kk * phase + rng.uniform(0, 1)))
    breath = _noise(rng, len(t), *fam["breath_band"])
    return Voice(out + fam["breath"] * breath * np.abs(out).max(), True)


def _square(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(2.6)
    k = np.arange(1, 200)
    amps = np.where(k % 2 == 1, 1 / k, fam["even"] / k) * np.exp(-k * f0 / fam["bright"])
    out = _partials(f0 * t, f0, amps, t, None, 0.0, rng)
    out += fam["second"] * _partials(f0 * 2 ** (fam["detune"] / 1200) * t, f0, amps, t, None,
                                     0.0, rng)
    return Voice(out, True)


def _organ(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(2.6)
    out = np.zeros_like(t)
    for ratio, level in fam["drawbars"]:
        if level and ratio * f0 < NYQUIST_GUARD:
            out += 10 ** ((level - 8) * 3 / 20) * np.sin(2 * np.pi * ratio * f0 * t
                                                        + rng.uniform(0, 6.3))
    rate = fam["leslie"]
    out *= 1 + fam["leslie_depth"] * np.sin(2 * np.pi * rate * t)
    out += fam["click"] * _noise(rng, len(t), 1000, 10000) * np.exp(-t * 200)
    return Voice(out, True)


def _pad(fam: dict, rng: np.random.Generator, key: int) -> Voice:
    f0, t = midi_hz(key), _time(2.6)
    k = np.arange(1, 80)
    amps = 1 / k * np.exp(-k * f0 / fam["bright"])
    out = np.zeros_like(t)
    for _ in range(3):
        phase = _vibrato_phase(f0 * 2 ** (rng.normal(0, fam["spread"]) / 1200), t, rng,
                               rng.uniform(0.1, 0.5), 3.0)
        out += _partials(phase, f0, amps, t, None, 0.0, rng)
    out *= _attack(t, fam["swell"])
    for ratio, amp in fam["bell"]:
        if ratio * f0 < NYQUIST_GUARD:
            out += amp * np.sin(2 * np.pi * ratio * f0 * t) * np.exp(-t * fam["bell_decay"])
    return Voice(out, True)


def _family(program: int, rng: np.random.Generator) -> tuple[Callable, dict, Envelope]:
    """A recipe and its family-wide parameters for a GM program; unknown programs fail."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if program == 0:
        return _piano, dict(inharm=u(2e-4, 8e-4), hammer=u(1 / 9, 1 / 7), tilt=u(0.7, 1.2),
                            bright=u(2500, 6000), decay=u(0.5, 1.2), detune=u(0.3, 1.5)), \
            Envelope(release=u(0.3, 0.6))
    if program in (24, 32):
        bass = program == 32
        body = [(u(80, 120), 0.3, u(4, 9)), (u(180, 260), 0.3, u(2, 6))] if bass else \
            [(u(95, 115), 0.25, u(3, 8)), (u(190, 230), 0.25, u(3, 7)), (u(380, 500), 0.4, u(0, 5))]
        return _plucked, dict(pluck=u(0.2, 0.33) if bass else u(0.1, 0.22),
                              tilt=u(1.1, 1.6) if bass else u(0.8, 1.3),
                              bright=u(500, 1200) if bass else u(1500, 3500),
                              decay=u(1.0, 2.5), damp=u(0.2, 0.6), body=body,
                              inharm=u(0, 3e-4) if bass else u(0, 1e-4),
                              thump=u(0.05, 0.2) if bass else u(0.0, 0.05)), \
            Envelope(release=u(0.08, 0.2))
    if program == 8:
        return _celesta, dict(decay=u(0.8, 1.8), strike=u(0.02, 0.08),
                              modes=[(u(2.9, 3.1), u(0.05, 0.2), u(3, 8)),
                                     (u(5.5, 6.5), u(0.02, 0.08), u(8, 20))]), \
            Envelope(release=u(0.4, 0.9))
    if program in (40, 48):
        violin = program == 40
        body = [(u(260, 290), 0.15, u(3, 8)), (u(430, 560), 0.2, u(3, 8)),
                (u(2000, 3200), 0.5, u(3, 8))] if violin else \
            [(u(250, 450), 0.5, u(2, 6)), (u(1500, 3000), 0.7, u(0, 5))]
        fam = dict(tilt=u(0.8, 1.2), bright=u(3000, 7000), body=body,
                   random_peaks=8 if violin else 3, spread=u(4, 12),
                   vib_rate=(u(4.8, 5.6), u(5.6, 6.8)),
                   vib_cents=u(15, 35) if violin else u(6, 15),
                   vib_delay=u(0.1, 0.3) if violin else 0.0, jitter=u(1, 4),
                   noise=u(0.005, 0.03), voices=int(rng.integers(4, 8)))
        return (_violin if violin else _strings), fam, Envelope(
            attack=u(0.04, 0.1) if violin else u(0.12, 0.3),
            release=u(0.15, 0.3) if violin else u(0.3, 0.6))
    if program in (56, 64, 72):
        trumpet, sax = program == 56, program == 64
        if trumpet:
            slope = u(1.0, 1.6)
            harmonics = lambda k, s=slope: np.minimum(1.0, (k / 3.0) ** 0.5) / k ** (s - 1)  # noqa: E731
            formants = [(u(1000, 1500), 0.6, u(4, 10)), (u(2500, 3500), 0.4, u(0, 5))]
        elif sax:
            tilt = u(0.6, 1.0)
            harmonics = lambda k, s=tilt: 1 / k ** s  # noqa: E731
            formants = [(u(500, 800), 0.4, u(4, 9)), (u(1500, 2500), 0.4, u(2, 7)),
                        (u(3000, 4000), 0.4, u(0, 5))]
        else:
            h2, h3 = u(0.1, 0.3), u(0.02, 0.1)
            harmonics = lambda k, a=h2, b=h3: np.select(  # noqa: E731
                [k == 1, k == 2, k == 3], [1.0, a, b], 0.01 / k)
            formants = []
        return _wind, dict(harmonics=harmonics, formants=formants,
                           bright=u(4000, 9000) if not trumpet else u(3000, 6000),
                           vib_rate=(u(4.5, 5.2), u(5.2, 6.0)),
                           vib_cents=u(0, 10) if trumpet else u(10, 25),
                           vib_delay=u(0.1, 0.4), jitter=u(0.5, 2),
                           scoop=u(30, 80) if trumpet else 0.0,
                           bloom=u(0.002, 0.005) if trumpet else 0.0,
                           breath=u(0.01, 0.04) if trumpet else u(0.02, 0.08),
                           breath_band=(1000, 8000) if not trumpet else (500, 4000)), \
            Envelope(attack=u(0.02, 0.06), release=u(0.08, 0.15))
    if program == 80:
        return _square, dict(even=u(0.0, 0.1), bright=u(4000, 12000), second=u(0.2, 0.7),
                             detune=u(3, 12)), Envelope(release=u(0.05, 0.15))
    if program == 16:
        footages = (0.5, 1.5, 1, 2, 3, 4, 5, 6, 8)
        levels = [int(rng.integers(0, 9)) for _ in footages]
        levels[2] = max(levels[2], 5)
        return _organ, dict(drawbars=list(zip(footages, levels)), leslie=u(0.8, 6.7),
                            leslie_depth=u(0.05, 0.3), click=u(0.0, 0.1)), \
            Envelope(release=u(0.02, 0.08))
    if program == 88:
        return _pad, dict(bright=u(1000, 2500), spread=u(5, 15), swell=u(0.2, 0.6),
                          bell=[(1.0, u(0.2, 0.6)), (u(2.0, 4.2), u(0.1, 0.3))],
                          bell_decay=u(2, 5)), Envelope(release=u(0.8, 2.0))
    raise InstrlabError(f"no synthesis recipe for General MIDI program {program}; procedural "
                        "families cover the seed12 programs (0 8 16 24 32 40 48 56 64 72 80 88)")


def _seamless(voice: Voice) -> tuple[np.ndarray, tuple[int, int] | None]:
    """One sample's audio and loop: a loop over the last part for sustained sounds, its end
    cross-faded into the audio before the loop's start so that the loop has no click."""
    audio = voice.audio / (np.abs(voice.audio).max() + 1e-12) * 0.9
    if not voice.sustained:
        fade = min(len(audio), int(0.05 * SR))
        audio[-fade:] *= np.linspace(1, 0, fade)
        return audio, None
    a, cross = int(0.8 * SR), int(0.15 * SR)
    b = len(audio) - 16
    w = np.linspace(0, 1, cross)
    audio[b - cross:b] = audio[b - cross:b] * (1 - w) + audio[a - cross:a] * w
    audio[b:] = audio[a:a + len(audio) - b]
    return audio, (a, b)


def procedural_presets(programs: list[tuple[str, int, tuple[int, int]]], seed: int
                       ) -> list[Preset]:
    """Presets for (name, GM program, register) triples, one sample every ``ROOT_STEP``
    semitones over the register; ``seed`` picks the family (every parameter)."""
    presets = []
    for name, program, (lo, hi) in programs:
        fam_rng = np.random.default_rng([seed, program, 0x5F2])
        recipe, fam, env = _family(program, fam_rng)
        zones = []
        roots = list(range(lo, hi + 1, ROOT_STEP))
        for i, root in enumerate(roots):
            rng = np.random.default_rng([seed, program, root])
            audio, loop = _seamless(recipe(fam, rng, root))
            low = 0 if i == 0 else root - ROOT_STEP // 2
            high = 127 if i == len(roots) - 1 else root + ROOT_STEP - ROOT_STEP // 2 - 1
            zones.append(Zone(audio, SR, root, (low, high), loop))
        presets.append(Preset(name, program, tuple(zones), env))
    return presets


def family_file(seed: int) -> str:
    """The file name of procedural family ``seed``: a changed recipe is a new name, so a file
    built by an older version is never mistaken for the current family."""
    return f"procedural-{seed}.v{RECIPES_VERSION}.sf2"


def procedural_soundfont(seed: int, folder: Path | None = None) -> Path:
    """Build the .sf2 of procedural family ``seed`` (seed12's programs over their registers)
    into ``folder`` (default: the cache directory's ``soundfonts``) unless it is there; about
    40 s. The file appears whole or not at all; two processes that build it at once write
    the same bytes."""
    if not 0 <= seed < 2**31:
        raise InstrlabError(f"procedural family seed must be in 0..{2**31 - 1}, got {seed}")
    path = Path(folder or cache_dir() / "soundfonts") / family_file(seed)
    if path.is_file():
        return path.resolve()
    programs = [(label, program, register) for _, program, label, register in SEED12]
    return write_soundfont(path, f"instrlab procedural {seed}",
                           procedural_presets(programs, seed)).resolve()
