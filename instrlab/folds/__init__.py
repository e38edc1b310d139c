"""Leave-one-family-out: train on every sample family but one, test on the one held out.

A *sample family* is a set of presets that share recordings (found by
:mod:`instrlab.synth.provenance`), per instrument: MuseScore_General's violin is FluidR3's
violin, its piano is not. A fold holds out one or more soundfonts wholesale and, for each
instrument, every other soundfont whose preset shares samples with a held-out one; it
trains on what is left (each instrument drawing its own soundfont per clip), selects on
that data's validation split, and is scored on clean clips of each held-out soundfont. No
threshold, epoch or setting is chosen on the held-out family.
"""
