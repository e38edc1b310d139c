"""A score as a standard MIDI file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instrlab.instruments import InstrumentSet
from instrlab.scores.base import SECONDS_PER_TICK, TEMPO_BPM, TICKS_PER_BEAT, Score

if TYPE_CHECKING:
    import mido


def score_to_midi(score: Score, iset: InstrumentSet) -> mido.MidiFile:
    """The score as a type-1 MIDI file: one track per instrument, one channel each."""
    import mido  # here: ScoreConfig is read by --help, and mido costs 0.1 s to import

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
    mid.tracks.append(meta)
    for slot, inst in enumerate(score.instruments):
        spec = iset.instruments[inst]
        channel = slot if slot < 9 else slot + 1  # skip the GM drum channel
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=spec.name, time=0))
        if spec.bank:
            track.append(mido.Message("control_change", channel=channel, control=0,
                                      value=spec.bank >> 7, time=0))
            track.append(mido.Message("control_change", channel=channel, control=32,
                                      value=spec.bank & 127, time=0))
        track.append(mido.Message("program_change", channel=channel, program=spec.program, time=0))
        events: list[tuple[int, int, mido.Message]] = []
        for n in score.notes_of(inst):
            on = round(n.start / SECONDS_PER_TICK)
            off = round(n.end / SECONDS_PER_TICK)
            events.append((on, 1, mido.Message("note_on", channel=channel, note=n.pitch,
                                               velocity=n.velocity)))
            events.append((off, 0, mido.Message("note_off", channel=channel, note=n.pitch,
                                                velocity=0)))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(track)
    return mid
