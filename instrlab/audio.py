"""Reading audio files for prediction: whole, or streamed window by window in flat memory.

Samples must be finite and of sane size (|x| <= :data:`MAX_ABS`); anything else is a
one-line :class:`~instrlab.errors.InstrlabError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.errors import InstrlabError, first_line

MAX_ABS = 1e6  # float audio beyond this is corrupt (PCM decodes to [-1, 1])
MIN_FRACTION = 0.2  # a tail window is kept if it holds this much of a window


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InstrlabError(f"{path}: no such file")
    if path.is_dir():
        raise InstrlabError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise InstrlabError(f"{path}: file is empty")


def _unreadable(path: Path, exc: BaseException) -> InstrlabError:
    return InstrlabError(f"{path}: not a readable audio file ({first_line(exc, 100)}); "
                         "use WAV, FLAC or OGG")


def check_samples(samples: np.ndarray, path: Path) -> None:
    """Raise if ``samples`` hold NaN, infinity or values beyond :data:`MAX_ABS`."""
    if samples.size and not (np.isfinite(samples).all() and np.abs(samples).max() <= MAX_ABS):
        raise InstrlabError(f"{path}: holds non-finite or absurdly large samples (NaN, inf or "
                            f"|x| > {MAX_ABS:g}); the file is corrupt")


def _mono(block: np.ndarray, path: Path) -> np.ndarray:
    check_samples(block, path)
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``; missing, empty, undecodable or corrupt files raise."""
    import soundfile as sf

    _check_path(path)
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise _unreadable(path, exc) from exc
    if audio.shape[0] == 0:
        raise InstrlabError(f"{path}: holds no audio samples")
    mono = _mono(audio, path)
    if sr != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=sr, target_sr=sample_rate)
    return mono.astype(np.float32)


def windows(audio: np.ndarray, n: int, min_fraction: float = MIN_FRACTION) -> list[np.ndarray]:
    """Consecutive clips of ``n`` samples; a short tail is kept if it holds enough audio."""
    out = [audio[s:s + n] for s in range(0, max(len(audio), 1), n)]
    if len(out) > 1 and len(out[-1]) < min_fraction * n:
        out.pop()
    return out


class AudioStream:
    """A file's windows of ``n`` samples at ``sample_rate``, read one window at a time.

    Each window is read at the file's own rate and resampled on its own (windows are
    independent clips), so memory does not grow with the file. Iterate once; afterwards
    :attr:`seconds` is the file's duration.
    """

    def __init__(self, path: Path, sample_rate: int, n: int,
                 min_fraction: float = MIN_FRACTION) -> None:
        self.path, self.sample_rate, self.n, self.min_fraction = path, sample_rate, n, min_fraction
        self.frames = 0  # read so far, at the file's rate
        self.file_rate = 0

    @property
    def seconds(self) -> float:
        """Duration of what was read, in seconds."""
        return self.frames / self.file_rate if self.file_rate else 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        import soundfile as sf

        _check_path(self.path)
        try:
            with sf.SoundFile(str(self.path)) as f:
                self.file_rate = f.samplerate
                yield from self._windows(f)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise _unreadable(self.path, exc) from exc

    def _windows(self, f: Any) -> Iterator[np.ndarray]:
        sr, target, n = self.file_rate, self.sample_rate, self.n
        k = 0
        while True:
            want = round((k + 1) * n * sr / target) - round(k * n * sr / target)
            block = f.read(want, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                if k == 0:
                    raise InstrlabError(f"{self.path}: holds no audio samples")
                return
            self.frames += block.shape[0]
            mono = self._resample(_mono(block, self.path))
            if block.shape[0] < want:  # the tail
                if k == 0 or len(mono) >= self.min_fraction * n:
                    yield mono
                return
            yield mono[:n] if len(mono) >= n else np.pad(mono, (0, n - len(mono)))
            k += 1

    def _resample(self, mono: np.ndarray) -> np.ndarray:
        if self.file_rate == self.sample_rate:
            return mono
        import librosa

        return librosa.resample(mono, orig_sr=self.file_rate,
                                target_sr=self.sample_rate).astype(np.float32)
