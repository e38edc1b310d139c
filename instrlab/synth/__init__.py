"""Synth backends: render a score's instruments as separate mono stems."""

from instrlab.synth.base import SynthBackend, get_synth
from instrlab.synth.fluidsynth_backend import FluidSynthBackend

__all__ = ["FluidSynthBackend", "SynthBackend", "get_synth"]
