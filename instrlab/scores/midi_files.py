"""``midi_files``: clips cut from the user's own MIDI files (``--midi-files``).

Each file is read with its tempo map (times in seconds), each channel's current program
decides what its notes play, and a note plays the set's instrument with the same General
MIDI program (bank 0), or with ``midi_map`` "family" else the set's first instrument of the
same GM family (program // 8). Drums (channel 10) and unmapped programs are skipped. Every
file is cut into consecutive windows of ``clip_seconds`` from its start; a window in which
a mapped note sounds is a clip, labelled with the instruments that sound in it. Clip
``index`` is window ``index mod N`` of all files' windows, in file order.

A file that cannot be used (unreadable, type 2, no notes, no mapped track) is skipped with
a one-line warning; no usable window at all is an error.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrlab.errors import InstrlabError
from instrlab.instruments import InstrumentSet
from instrlab.registry import score_generators
from instrlab.scores.base import Note, ScoreConfig, ScoreRequest, quantise
from instrlab.scores.parse_cache import cached_json

SUFFIXES = (".mid", ".midi")
DRUMS = 9  # GM channel 10, counted from 0
PARSE_VERSION = 1
"""Bumped whenever :func:`parse_file` reads the same bytes differently: it names the
cached parses."""
SPLIT_HINT = ("(a --set value splits paths at spaces and commas: give a path that holds "
              "them to --midi-files, or as a list in a TOML file)")

Stamp = tuple[tuple[str, str, int, int], ...]
"""(path as given, resolved path, mtime in ns, size) of each file: the parse cache's key."""


class UnusableFile(Exception):
    """Why one MIDI file gives no clip."""


class Unmapped(UnusableFile):
    """A file whose notes all play programs the set lacks, or drums."""


@dataclass(frozen=True)
class MidiClips:
    """The mapped notes of every usable file (seconds from its start) and the windows."""

    notes: tuple[tuple[Note, ...], ...]
    windows: tuple[tuple[int, int], ...]
    """(file, window number) of every window in which a mapped note sounds."""


def resolve_files(paths: tuple[str, ...]) -> list[Path]:
    """The files ``paths`` name, each directory replaced by its MIDI files (sorted, not
    recursive); a missing path or a directory without MIDI files is an error."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in SUFFIXES and p.is_file())
            if not found:
                raise InstrlabError(f"--midi-files: {given} holds no .mid or .midi file "
                                    "(directories are not searched recursively)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InstrlabError(f"--midi-files: {given} does not exist {SPLIT_HINT}")
    return files


def file_digests(paths: tuple[str, ...]) -> list[str]:
    """The sha256 of every file ``paths`` resolve to, in clip order."""
    try:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in resolve_files(paths)]
    except OSError as exc:
        raise InstrlabError(f"--midi-files: cannot read {exc.filename} ({exc.strerror})") \
            from None


def program_map(iset: InstrumentSet, midi_map: str) -> dict[int, int]:
    """GM program -> index of the instrument that plays it, by ``midi_map``."""
    exact: dict[int, int] = {}
    family: dict[int, int] = {}
    for i, spec in enumerate(iset.instruments):
        if spec.bank == 0:
            exact.setdefault(spec.program, i)
            family.setdefault(spec.program // 8, i)
    if midi_map == "program":
        return exact
    return {p: exact.get(p, family.get(p // 8)) for p in range(128)
            if p in exact or p // 8 in family}


def parse_file(data: bytes) -> dict[str, list]:
    """Every note of one MIDI file's bytes, ``[program, pitch, velocity, start, end]`` in
    seconds from its start, and the programs ``heard`` ("drums": channel 10);
    :class:`UnusableFile` says why a file has none."""
    import io

    import mido  # here: ScoreConfig is read by --help, and mido costs 0.1 s to import

    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
        messages = [] if mid.type == 2 else list(mid)
    except Exception as exc:  # mido raises OSError, EOFError, KeyError, ValueError, ...
        detail = " ".join(f"{type(exc).__name__}: {exc}".split()).removesuffix(":")
        raise UnusableFile(f"not a readable MIDI file ({detail})") from None
    if mid.type == 2:
        raise UnusableFile("type 2 (independent sequences, no single timeline); save it as "
                           "type 0 or 1")
    current = [0] * 16
    sounding: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    notes: list[list] = []
    heard: set[int | str] = set()
    now = 0.0
    for msg in messages:
        now += msg.time
        if msg.type == "program_change":
            current[msg.channel] = msg.program
        elif msg.type in ("note_on", "note_off") and msg.channel == DRUMS:
            heard.add("drums")
        elif msg.type == "note_on" and msg.velocity > 0:
            heard.add(current[msg.channel])
            key = (msg.channel, msg.note)
            sounding.setdefault(key, []).append((now, msg.velocity, current[msg.channel]))
        elif msg.type in ("note_on", "note_off") and sounding.get((msg.channel, msg.note)):
            start, velocity, program = sounding[(msg.channel, msg.note)].pop(0)
            if now > start:
                notes.append([program, msg.note, velocity, start, now])
    for (_, pitch), held in sounding.items():  # never released: they end with the file
        notes += [[p, pitch, v, s, now] for s, v, p in held if now > s]
    if not heard:
        raise UnusableFile("holds no notes")
    programs = sorted(p for p in heard if isinstance(p, int))
    return {"notes": notes, "heard": [*programs, *(["drums"] if "drums" in heard else [])]}


def parsed_file(path: Path) -> dict[str, list]:
    """:func:`parse_file` of ``path``, parsed once per content and ``PARSE_VERSION`` (a
    JSON file under ``$INSTRLAB_CACHE/midi``, shared by every process and run); an
    unusable file's reason is kept too."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableFile(f"cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()

    def parse() -> dict[str, Any]:
        try:
            return parse_file(data)
        except UnusableFile as why:
            return {"unusable": str(why)}

    def valid(entry: Any) -> bool:
        return isinstance(entry, dict) and (isinstance(entry.get("unusable"), str) or (
            isinstance(entry.get("notes"), list) and isinstance(entry.get("heard"), list)))

    entry = cached_json(f"midi/v{PARSE_VERSION}-{digest}.json", parse, valid)
    if "unusable" in entry:
        raise UnusableFile(entry["unusable"])
    return entry


def read_notes(path: Path, programs: dict[int, int]) -> list[Note]:
    """The mapped notes of one file, in seconds from its start; :class:`UnusableFile` says
    why a file has none."""
    parsed = parsed_file(path)
    notes = [Note(programs[p], pitch, velocity, start, end)
             for p, pitch, velocity, start, end in parsed["notes"] if p in programs]
    if not notes:
        raise Unmapped(f"no track plays an instrument of the set (it plays GM programs, from "
                       f"0: {', '.join(str(p) for p in parsed['heard'])})")
    return sorted(notes, key=lambda n: (n.start, n.instrument, n.pitch))


def window_notes(notes: tuple[Note, ...], number: int, seconds: float) -> list[Note]:
    """The notes that sound in window ``number`` of ``seconds``, from its start (starts
    clamped at 0); a note counts when at least one MIDI tick of it lies inside."""
    begin, end = number * seconds, quantise(seconds)
    out = []
    for n in notes:
        start, stop = max(0.0, n.start - begin), n.end - begin
        if start < seconds and min(quantise(stop), end) > quantise(start):
            out.append(Note(n.instrument, n.pitch, n.velocity, start, stop))
    return out


def windows_of(notes: tuple[Note, ...], seconds: float) -> list[int]:
    """The numbers of the windows of ``seconds`` in which a note sounds."""
    found: set[int] = set()
    for n in notes:
        for k in range(int(n.start // seconds), int(n.end // seconds) + 1):
            if k not in found and window_notes((n,), k, seconds):
                found.add(k)
    return sorted(found)


def warn(message: str) -> None:
    """One line on stderr, from the main process only (dataset workers parse the files too,
    and the parent has already said it)."""
    if multiprocessing.parent_process() is None:
        print(f"instrlab: warning: {message}", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=4)
def _load(stamp: Stamp, midi_map: str, iset: InstrumentSet, seconds: float) -> MidiClips:
    programs = program_map(iset, midi_map)
    notes: list[tuple[Note, ...]] = []
    windows: list[tuple[int, int]] = []
    for path, resolved, _, _ in stamp:
        try:
            found = tuple(read_notes(Path(resolved), programs))
        except UnusableFile as why:
            hint = "; --midi-map family maps programs by family" if (
                isinstance(why, Unmapped) and midi_map == "program") else ""
            warn(f"skipping MIDI file {path}: {why}{hint}")
            continue
        windows += [(len(notes), k) for k in windows_of(found, seconds)]
        notes.append(found)
    if not windows:
        raise InstrlabError(f"--midi-files: none of the {len(stamp)} MIDI files gives a clip "
                            f"with a note of an instrument of {iset.name} (see the warnings "
                            "above); give files whose tracks play its GM programs, or try "
                            "--midi-map family")
    return MidiClips(tuple(notes), tuple(windows))


def load_clips(cfg: ScoreConfig, iset: InstrumentSet) -> MidiClips:
    """The windows of ``cfg.midi_files`` for ``iset``, parsed once per process and per
    version of the files."""
    try:
        stamp = tuple((str(p), str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size)
                      for p in resolve_files(cfg.midi_files))
    except OSError as exc:
        raise InstrlabError(f"--midi-files: cannot read {exc.filename} ({exc.strerror})") \
            from None
    return _load(stamp, cfg.midi_map, iset, float(cfg.clip_seconds))


@score_generators.register("midi_files")
def midi_files(req: ScoreRequest) -> list[Note]:
    """Clips cut from your MIDI files (--midi-files), tracks mapped to the set by GM program
    (--midi-map); labels are the instruments that sound in each clip."""
    clips = load_clips(req.cfg, req.iset)
    file, number = clips.windows[req.index % len(clips.windows)]
    return window_notes(clips.notes[file], number, req.cfg.clip_seconds)


midi_files.chooses_instruments = True  # type: ignore[attr-defined]
midi_files.prepare = load_clips  # type: ignore[attr-defined]
