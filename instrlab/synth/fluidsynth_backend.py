"""Offline FluidSynth rendering through pyfluidsynth's ctypes bindings.

No audio driver and no real-time pacing: audio is pulled with ``fluid_synth_write_float``
in exactly as many samples as lie between two events. FluidSynth applies events at its
64-sample block boundaries (1.45 ms at 44.1 kHz), the finest timing it offers; every
stem is rendered to a whole number of blocks and the synth is reset between stems, so
nothing sounds over from one stem or sample into the next and the same input always
gives the same output. With reverb or chorus on, whose tails never reach exact silence,
each stem gets a fresh synth (slower; the default renders dry).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument
from instrlab.registry import synths
from instrlab.scores import Note
from instrlab.soundfonts import check_soundfont_header, find_soundfont, soundfont_checksum

BLOCK = 64  # FluidSynth's internal block size (FLUID_BUFSIZE)
CHANNEL = 0
PRIME_KEYS = 96  # notes in the priming chord; each takes one or more voice slots


def _load_library() -> Any:
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise InstrlabError(
            f"FluidSynth is not available ({exc}); install it with "
            "apt-get install libfluidsynth3 (or conda install -c conda-forge fluidsynth) "
            "and pip install pyfluidsynth"
        ) from exc
    return fluidsynth


class FluidSynthBackend:
    """Renders instrument stems with a soundfont; one instance per process."""

    def __init__(
        self,
        soundfont: str | None = None,
        sample_rate: int = 44100,
        reverb: bool = False,
        chorus: bool = False,
        gain: float = 0.2,
        interpolation: int = 4,
    ) -> None:
        if sample_rate not in (22050, 32000, 44100, 48000, 88200, 96000):
            raise InstrlabError(f"sample_rate {sample_rate} is not supported; use 44100")
        if interpolation not in (0, 1, 4, 7):
            raise InstrlabError(
                f"interpolation must be 0 (none), 1 (linear), 4 (4th order) or 7, got "
                f"{interpolation}"
            )
        self.path: Path = find_soundfont(soundfont)
        check_soundfont_header(self.path)
        self.sample_rate = int(sample_rate)
        self.reverb, self.chorus = bool(reverb), bool(chorus)
        self.gain, self.interpolation = float(gain), int(interpolation)
        self._fl = _load_library()
        self._write = self._fl._fl.fluid_synth_write_float
        self._write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._write.restype = ctypes.c_int
        self._synth: Any = None
        self._new_synth()

    def _new_synth(self) -> None:
        if self._synth is not None:
            self._synth.delete()
        self._synth = self._fl.Synth(
            gain=self.gain,
            samplerate=self.sample_rate,
            channels=16,
            **{
                "synth.reverb.active": int(self.reverb),
                "synth.chorus.active": int(self.chorus),
                "synth.cpu-cores": 1,
                "synth.polyphony": 256,
            },
        )
        self._sfid = self._synth.sfload(str(self.path))
        if self._sfid < 0:
            raise InstrlabError(
                f"FluidSynth could not load soundfont {self.path}; the file may be corrupt: "
                "reinstall it or pick another with --soundfont"
            )
        set_interp = self._fl._fl.fluid_synth_set_interp_method
        set_interp.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        set_interp.restype = ctypes.c_int
        set_interp(self._synth.synth, -1, self.interpolation)

    def reset(self) -> None:
        """A fresh synth: the only state FluidSynth guarantees to be history-free."""
        self._new_synth()

    def identity(self) -> dict[str, Any]:
        """Everything that changes the rendered audio."""
        return {
            "backend": "fluidsynth",
            "soundfont": self.path.name,
            "soundfont_sha256": soundfont_checksum(self.path),
            "sample_rate": self.sample_rate,
            "reverb": self.reverb,
            "chorus": self.chorus,
            "gain": self.gain,
            "interpolation": self.interpolation,
        }

    def _select(self, instrument: Instrument) -> None:
        status = self._synth.program_select(
            CHANNEL, self._sfid, instrument.bank, instrument.program
        )
        if status != 0:
            raise InstrlabError(
                f"soundfont {self.path.name} has no preset bank {instrument.bank} program "
                f"{instrument.program} for instrument {instrument.name!r}; fix the instrument "
                "set or use another soundfont"
            )

    def _pull(self, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
        if stop <= start:
            return
        n = stop - start
        lp = left.ctypes.data + 4 * start
        rp = right.ctypes.data + 4 * start
        if self._write(self._synth.synth, n, lp, 0, 1, rp, 0, 1) != 0:
            raise InstrlabError("FluidSynth failed to render audio")

    def render_stem(self, instrument: Instrument, notes: list[Note], seconds: float) -> np.ndarray:
        """Render ``notes`` of one instrument; returns mono float32 of ``seconds`` length."""
        n = int(round(seconds * self.sample_rate))
        total = -(-n // BLOCK) * BLOCK
        left = np.zeros(total, np.float32)
        right = np.zeros(total, np.float32)
        if self.reverb or self.chorus:
            # effect units keep a tail that never reaches exact silence: start afresh
            self._new_synth()
        self._prime()
        self._select(instrument)
        events: list[tuple[int, int, int, int]] = []
        for note in notes:
            on = int(round(note.start * self.sample_rate))
            off = int(round(note.end * self.sample_rate))
            events.append((on, 1, note.pitch, note.velocity))
            events.append((off, 0, note.pitch, 0))
        events.sort(key=lambda e: (e[0], e[1]))
        pos = 0
        for at, is_on, pitch, vel in events:
            at = min(at, n)
            self._pull(left, right, pos, at)
            pos = max(pos, at)
            if is_on:
                self._synth.noteon(CHANNEL, pitch, vel)
            else:
                self._synth.noteoff(CHANNEL, pitch)
        self._pull(left, right, pos, total)
        return ((left[:n] + right[:n]) * 0.5).astype(np.float32, copy=False)

    def _prime(self) -> None:
        """Put every voice slot a stem may use into the same state, whatever came before.

        FluidSynth voices keep a little state from their previous note (filter coefficients
        are ramped from the old values over one block), so each stem first plays and kills
        the same fixed chord; this makes a stem's audio independent of render history.
        """
        self._synth.program_select(CHANNEL, self._sfid, 0, 0)
        for key in range(PRIME_KEYS):
            self._synth.noteon(CHANNEL, 24 + key, 100)
        scratch = np.zeros(BLOCK, np.float32)
        self._pull(scratch, scratch, 0, BLOCK)
        self._drain()

    def _drain(self) -> None:
        """Silence the synth and render until its voices have died away.

        FluidSynth applies ``all_sounds_off``/``system_reset`` asynchronously and lets
        voices ramp down, so without this a stem would start with the last one's tail.
        """
        self._synth.all_sounds_off(CHANNEL)
        self._synth.system_reset()
        scratch = np.zeros(8 * BLOCK, np.float32)
        for _ in range(int(30 * self.sample_rate) // scratch.size):
            self._pull(scratch, scratch, 0, scratch.size)
            if self._synth.get_active_voice_count() == 0 and (
                not scratch.any() or self.reverb or self.chorus
            ):
                return
        raise InstrlabError("FluidSynth did not fall silent within 30 s after a stem")

    def close(self) -> None:
        self._synth.delete()


@synths.register("fluidsynth")
def fluidsynth_backend(**params: Any) -> FluidSynthBackend:
    """FluidSynth, offline, with a SoundFont (default FluidR3_GM.sf2)."""
    return FluidSynthBackend(**params)
