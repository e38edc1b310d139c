"""What the parse cache of ``--midi-files`` saves: the clips of a collection of MIDI files
read with an empty cache (every file parsed by mido) and again as a new process would, with
the cache written by the first (every file read back as JSON), in one process, so the two
figures compare as a ratio on a noisy machine. Every process of a dataset build (the main
one and each worker) reads the clips, and so does every later run on the same files.

    python benchmarks/bench_midi_parse.py [--files 20] [--minutes 3] [--tracks 10]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import mido

from instrlab.instruments import get_instrument_set
from instrlab.scores import ScoreConfig
from instrlab.scores.midi_files import _load, load_clips


def write_song(path: Path, minutes: float, tracks: int, rng: random.Random) -> None:
    """A type-1 file of ``tracks`` GM programs playing eighth notes at 120 bpm."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    for ch in range(tracks):
        track = mido.MidiTrack()
        channel = ch if ch < 9 else ch + 1  # not the drums
        track.append(mido.Message("program_change", channel=channel, program=(ch * 8) % 128))
        for _ in range(int(minutes * 60 * 4)):
            pitch = rng.randint(40, 84)
            track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=80))
            track.append(mido.Message("note_off", channel=channel, note=pitch, time=240))
        mid.tracks.append(track)
    mid.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20, help="MIDI files in the collection")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each file")
    parser.add_argument("--tracks", type=int, default=10, help="tracks of each file")
    args = parser.parse_args()
    iset = get_instrument_set("seed12")
    with tempfile.TemporaryDirectory() as tmp:
        songs = Path(tmp) / "songs"
        songs.mkdir()
        rng = random.Random(0)
        for i in range(args.files):
            write_song(songs / f"song{i:03d}.mid", args.minutes, args.tracks, rng)
        os.environ["INSTRLAB_CACHE"] = str(Path(tmp) / "cache")
        cfg = ScoreConfig(generators=(("midi_files", 1.0),), midi_files=(str(songs),),
                          midi_map="family")
        times = []
        for _ in ("empty cache", "cached"):
            _load.cache_clear()  # what a new process starts with
            start = time.perf_counter()
            clips = load_clips(cfg, iset)
            times.append(time.perf_counter() - start)
        size = sum(p.stat().st_size for p in songs.iterdir()) / 2**20
        print(f"{args.files} files ({size:.1f} MiB MIDI, {args.tracks} tracks x "
              f"{args.minutes:g} min), {len(clips.windows)} clips:")
        print(f"  empty cache (mido parses): {times[0]:7.3f} s  "
              f"({times[0] / args.files * 1000:.0f} ms per file)")
        print(f"  cached (JSON read back):   {times[1]:7.3f} s  "
              f"({times[1] / args.files * 1000:.0f} ms per file)")
        print(f"  ratio: the cache reads the clips {times[0] / times[1]:.1f}x faster")


if __name__ == "__main__":
    main()
