"""Offline FluidSynth rendering through pyfluidsynth's ctypes bindings.

No audio driver and no real-time pacing: audio is pulled with ``fluid_synth_write_float``
in exactly as many samples as lie between two events. FluidSynth applies events at its
64-sample block boundaries (1.45 ms at 44.1 kHz), the finest timing it offers; every
stem is rendered by a fresh synth that shares the once-loaded soundfont, so nothing sounds
over from one stem or sample into the next and the same notes always give the same bytes,
whatever was rendered before, in whichever process.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument
from instrlab.registry import synths
from instrlab.scores import Note
from instrlab.synth.soundfonts import check_soundfont_header, find_soundfont, soundfont_checksum

BLOCK = 64  # FluidSynth's internal block size (FLUID_BUFSIZE)
FLUID_WARN = 2  # log level of FluidSynth's warnings
CHANNEL = 0
POLYPHONY = 256


def _load_library() -> Any:
    try:
        # pyfluidsynth prints where it found the library when $CI is set: keep stdout clean
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as exc:
        raise InstrlabError(
            f"FluidSynth is not available ({exc}); install it with "
            "apt-get install libfluidsynth3 (or conda install -c conda-forge fluidsynth) "
            "and pip install pyfluidsynth"
        ) from exc
    return fluidsynth


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what C libraries write to file descriptor 2 (FluidSynth logs errors there).

    Used around the calls that fail on a bad soundfont or instrument, so the user sees one
    clear line instead of the library's log; the library's reason goes into that line.
    """
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def _reason(lines: list[str]) -> str:
    """FluidSynth's first error message, for an error line."""
    for line in lines:
        if line.startswith("fluidsynth: error:"):
            return f" ({line.removeprefix('fluidsynth: error:').strip()})"
    return ""


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
        lib = self._fl._fl
        for name, restype, argtypes in (
            ("fluid_synth_get_sfont_by_id", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
            ("fluid_synth_add_sfont", ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
            ("fluid_synth_remove_sfont", ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p]),
            ("fluid_synth_set_interp_method", ctypes.c_int,
             [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
            ("fluid_synth_set_gen", ctypes.c_int,
             [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float]),
            ("fluid_set_log_function", ctypes.c_void_p,
             [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self._lib = lib
        # a render synth starts without a soundfont and warns about it on every channel
        lib.fluid_set_log_function(FLUID_WARN, None, None)
        self._loader: Any = None
        self._synth: Any = None

    def _load(self) -> None:
        """Load the soundfont on first use, not on construction: a cached dataset needs only
        :meth:`identity`, and a compressed .sf3 takes seconds to load.

        It is loaded once, into a synth that never plays, and shared with the render synths:
        a fresh render synth then costs ~10 ms instead of a reload.
        """
        if self._loader is not None:
            return
        loader = self._make_synth()
        with _captured_stderr() as log:  # a bad file makes FluidSynth log several lines
            loader_id = loader.sfload(str(self.path))
        if loader_id < 0:
            loader.delete()
            raise InstrlabError(
                f"FluidSynth could not load soundfont {self.path}{_reason(log)}; the file may "
                "be corrupt: reinstall it or pick another with --soundfont"
            )
        self._loader = loader
        self._sfont = self._lib.fluid_synth_get_sfont_by_id(loader.synth, loader_id)
        self._new_synth()

    def _make_synth(self) -> Any:
        return self._fl.Synth(
            gain=self.gain,
            samplerate=self.sample_rate,
            channels=16,
            **{
                "synth.reverb.active": int(self.reverb),
                "synth.chorus.active": int(self.chorus),
                "synth.cpu-cores": 1,
                "synth.polyphony": POLYPHONY,
            },
        )

    def _drop_synth(self) -> None:
        if getattr(self, "_synth", None) is not None:  # None too when the soundfont failed
            self._lib.fluid_synth_remove_sfont(self._synth.synth, self._sfont)
            self._synth.delete()
            self._synth = None

    def _new_synth(self) -> None:
        self._drop_synth()
        self._synth = self._make_synth()
        self._sfid = self._lib.fluid_synth_add_sfont(self._synth.synth, self._sfont)
        self._lib.fluid_synth_set_interp_method(self._synth.synth, -1, self.interpolation)

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

    def check_instruments(self, instruments: Any) -> None:
        """Fail before rendering, in one line, if the soundfont cannot be loaded or lacks any
        instrument's preset."""
        self._load()
        missing = []
        with _captured_stderr():
            for inst in instruments:
                if self._synth.program_select(CHANNEL, self._sfid, inst.bank, inst.program):
                    missing.append(f"{inst.name!r} (bank {inst.bank} program {inst.program})")
        if missing:
            raise InstrlabError(
                f"soundfont {self.path.name} has no preset for {', '.join(missing)}; fix the "
                "instrument set or use another soundfont"
            )

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

    def render_stem(self, instrument: Instrument, notes: list[Note], seconds: float,
                    generators: dict[int, float] | None = None) -> np.ndarray:
        """Render ``notes`` of one instrument; returns mono float32 of ``seconds`` length.

        ``generators`` maps SoundFont generator ids to offsets added to the preset's values
        (as NRPN would), e.g. from :func:`instrlab.synth.augment.voicing_offsets`.
        """
        n = int(round(seconds * self.sample_rate))
        total = -(-n // BLOCK) * BLOCK
        left = np.zeros(total, np.float32)
        right = np.zeros(total, np.float32)
        # Every stem gets a brand-new render synth (about 1 ms: the soundfont is shared).
        # FluidSynth voices keep traces of earlier notes (filter ramps, voice order, effect
        # tails), so this is what makes a stem independent of everything rendered before.
        self._load()
        self._new_synth()
        self._select(instrument)
        for gen, value in (generators or {}).items():
            if self._lib.fluid_synth_set_gen(self._synth.synth, CHANNEL, int(gen), value) != 0:
                raise InstrlabError(f"FluidSynth rejected generator {gen} = {value}")
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

    def close(self) -> None:
        """Free the synths (render synth first: it borrows the loader's soundfont)."""
        if getattr(self, "_loader", None) is None:
            return
        self._drop_synth()
        self._loader.delete()
        self._loader = None

    def __del__(self) -> None:
        self.close()


@synths.register("fluidsynth")
def fluidsynth_backend(**params: Any) -> FluidSynthBackend:
    """FluidSynth, offline, with a SoundFont (default FluidR3_GM.sf2)."""
    return FluidSynthBackend(**params)
