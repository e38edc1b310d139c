"""Example Python plugin: ``gm16``, one instrument from each of the 16 General MIDI families.

Every module in ``plugins/`` (and in each ``$INSTRLAB_PLUGINS`` directory) is imported
once per process; whatever it registers shows up in ``instrlab list`` with this file as
its source. The representative of family ``f`` is its first program, ``8 * f``; pitch
ranges follow each family's usual register.
"""

from __future__ import annotations

from instrlab.instruments import Instrument, InstrumentSet
from instrlab.registry import instrument_sets

# (family, name, display label, lowest pitch, highest pitch); program = 8 * family.
GM_FAMILIES = (
    (0, "acoustic_grand_piano", "Piano: Acoustic Grand Piano", 33, 96),
    (1, "celesta", "Chromatic Percussion: Celesta", 60, 96),
    (2, "drawbar_organ", "Organ: Drawbar Organ", 36, 84),
    (3, "nylon_acoustic_guitar", "Guitar: Nylon Acoustic Guitar", 40, 76),
    (4, "acoustic_bass", "Bass: Acoustic Bass", 28, 55),
    (5, "violin", "Strings: Violin", 55, 88),
    (6, "string_ensemble_1", "Ensemble: String Ensemble 1", 36, 84),
    (7, "trumpet", "Brass: Trumpet", 55, 82),
    (8, "soprano_sax", "Reed: Soprano Sax", 56, 87),
    (9, "piccolo", "Pipe: Piccolo", 74, 102),
    (10, "square_wave_lead", "Synth Lead: Square Wave", 48, 84),
    (11, "new_age_pad", "Synth Pad: New Age", 36, 84),
    (12, "fx_rain", "Synth Effects: Rain", 48, 84),
    (13, "sitar", "Ethnic: Sitar", 48, 77),
    (14, "tinkle_bell", "Percussive: Tinkle Bell", 60, 96),
    (15, "guitar_fret_noise", "Sound Effects: Guitar Fret Noise", 48, 72),
)


@instrument_sets.register("gm16")
def gm16() -> InstrumentSet:
    """One instrument per General MIDI family (programs 0, 8, ..., 120)."""
    return InstrumentSet(
        "gm16",
        tuple(
            Instrument(name, 8 * family, pitch_range=(lo, hi), label=label)
            for family, name, label, lo, hi in GM_FAMILIES
        ),
    )
