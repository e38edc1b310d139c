"""What a synth backend provides."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from instrlab.instruments import Instrument
from instrlab.registry import synths
from instrlab.scores import Note


class SynthBackend(Protocol):
    """Renders the notes of one instrument to a mono float32 stem, offline."""

    sample_rate: int

    def render_stem(self, instrument: Instrument, notes: list[Note], seconds: float,
                    generators: dict[int, float] | None = None) -> np.ndarray:
        """A mono float32 array of ``round(seconds * sample_rate)`` samples.

        ``generators``: SoundFont generator offsets (augmentation ``voicing``); a backend
        without generators raises :class:`~instrlab.errors.InstrlabError` when given some.
        """
        ...

    def identity(self) -> dict[str, Any]:
        """Everything that changes the audio (soundfont checksum, settings), for cache keys."""
        ...


def get_synth(name: str, **params: Any) -> SynthBackend:
    """Build the registered synth backend ``name``."""
    return synths.create(name, **params)
