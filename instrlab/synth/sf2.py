"""A small pure-Python reader of SoundFont 2 files (.sf2, and .sf3 with compressed samples).

Follows the SoundFont 2.04 RIFF layout: ``sfbk`` holds ``LIST INFO``, ``LIST sdta``
(``smpl``, optional ``sm24``) and ``LIST pdta`` (the "hydra": phdr, pbag, pmod, pgen, inst,
ibag, imod, igen, shdr). The hydra is read whole (it is small); the sample chunk never is:
only its file offset is kept, and :func:`read_sample_bytes` seeks to one sample's range.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from instrlab.errors import InstrlabError

GEN_INSTRUMENT = 41
GEN_SAMPLE_ID = 53
GEN_ROOT_KEY = 58  # overridingRootKey
SAMPLE_TYPE_COMPRESSED = 0x10  # SF3: Ogg Vorbis data; start/end are byte offsets
SAMPLE_TYPE_ROM = 0x8000

HYDRA = {  # chunk id -> (record format, record size); modulators (pmod, imod) are not needed
    b"phdr": ("<20sHHHIII", 38),
    b"pbag": ("<HH", 4),
    b"pgen": ("<HH", 4),
    b"inst": ("<20sH", 22),
    b"ibag": ("<HH", 4),
    b"igen": ("<HH", 4),
    b"shdr": ("<20sIIIIIBbHH", 46),
}
_FIX = "re-download or reinstall it, or leave it out"


@dataclass(frozen=True)
class PresetHeader:
    """One preset (``phdr`` record): its name, MIDI bank and 0-based program."""

    name: str
    bank: int
    program: int
    index: int  # position in phdr: zones are pbag[index's bag .. next preset's bag]


@dataclass(frozen=True)
class SampleHeader:
    """One ``shdr`` record; start/end count sample points (SF2) or bytes (SF3, compressed)."""

    name: str
    start: int
    end: int
    start_loop: int
    end_loop: int
    sample_rate: int
    original_pitch: int
    pitch_correction: int
    sample_link: int
    sample_type: int

    @property
    def compressed(self) -> bool:
        return bool(self.sample_type & SAMPLE_TYPE_COMPRESSED)

    @property
    def rom(self) -> bool:
        return bool(self.sample_type & SAMPLE_TYPE_ROM)


@dataclass(frozen=True)
class SampleZone:
    """A sample as an instrument zone plays it: at ``root_key`` (overridingRootKey, else the
    sample's original pitch)."""

    sample: SampleHeader
    root_key: int


@dataclass(frozen=True)
class SoundFont:
    """The parsed hydra of one soundfont file and where its sample data lie."""

    path: Path
    name: str
    presets: tuple[PresetHeader, ...]
    smpl_offset: int
    smpl_size: int
    preset_bags: tuple[int, ...]  # phdr's bag index per record, terminal record included
    pbag: tuple[tuple[int, int], ...]
    pgen: tuple[tuple[int, int], ...]
    inst_names: tuple[str, ...]
    inst_bags: tuple[int, ...]  # inst's bag index per record, terminal record included
    ibag: tuple[tuple[int, int], ...]
    igen: tuple[tuple[int, int], ...]
    samples: tuple[SampleHeader, ...]

    def find_preset(self, bank: int, program: int) -> PresetHeader | None:
        """The preset for (bank, program), else (0, program) as FluidSynth falls back; or None.

        Unlike FluidSynth's program change, there is no further fallback to program 0: a
        piano standing in for a missing preset would make every comparison wrong.
        """
        by_key = {(p.bank, p.program): p for p in reversed(self.presets)}  # first one wins
        return by_key.get((bank, program)) or by_key.get((0, program))

    def preset_instruments(self, preset: PresetHeader) -> tuple[int, ...]:
        """Indexes of the instruments the preset's zones play (the global zone skipped)."""
        lo, hi = self.preset_bags[preset.index], self.preset_bags[preset.index + 1]
        zones = _zones(self.pbag, self.pgen, lo, hi, self.path, f"preset {preset.name!r}")
        return tuple(_target(z, GEN_INSTRUMENT, len(self.inst_names), self.path, preset.name)
                     for z in zones if GEN_INSTRUMENT in z)

    def instrument_zones(self, inst: int) -> tuple[SampleZone, ...]:
        """The sample zones of one instrument, with the root key each plays its sample at."""
        lo, hi = self.inst_bags[inst], self.inst_bags[inst + 1]
        name = self.inst_names[inst]
        zones = _zones(self.ibag, self.igen, lo, hi, self.path, f"instrument {name!r}")
        default = zones[0] if zones and GEN_SAMPLE_ID not in zones[0] else {}
        out = []
        for zone in zones:
            if GEN_SAMPLE_ID not in zone:
                continue
            sample = self.samples[_target(zone, GEN_SAMPLE_ID, len(self.samples), self.path, name)]
            root = zone.get(GEN_ROOT_KEY, default.get(GEN_ROOT_KEY, -1))
            if not 0 <= root <= 127:
                root = sample.original_pitch if sample.original_pitch <= 127 else 60
            out.append(SampleZone(sample, root))
        return tuple(out)

    def preset_zones(self, preset: PresetHeader) -> tuple[SampleZone, ...]:
        """Every (sample, root key) a preset reaches, once each, in zone order."""
        seen: dict[SampleZone, None] = {}
        for inst in self.preset_instruments(preset):
            for zone in self.instrument_zones(inst):
                seen.setdefault(zone)
        return tuple(seen)

    def preset_samples(self, preset: PresetHeader) -> tuple[SampleHeader, ...]:
        """Every sample header a preset reaches, once each, in zone order."""
        return tuple(dict.fromkeys(zone.sample for zone in self.preset_zones(preset)))


def _zones(bags: tuple[tuple[int, int], ...], gens: tuple[tuple[int, int], ...], lo: int,
           hi: int, path: Path, owner: str) -> list[dict[int, int]]:
    """The generators of zones bags[lo:hi], one {operator: amount} dict per zone."""
    if not 0 <= lo <= hi < len(bags):
        raise _corrupt(path, f"{owner} has zones out of range")
    zones = []
    for zone in range(lo, hi):
        g_lo, g_hi = bags[zone][0], bags[zone + 1][0]
        if not 0 <= g_lo <= g_hi <= len(gens):
            raise _corrupt(path, f"{owner} has generators out of range")
        zones.append({oper: amount for oper, amount in gens[g_lo:g_hi]})
    return zones


def _target(zone: dict[int, int], oper: int, limit: int, path: Path, owner: str) -> int:
    if zone[oper] >= limit:
        raise _corrupt(path, f"{owner!r} points past the end of its list")
    return zone[oper]


def _corrupt(path: Path, what: str) -> InstrlabError:
    return InstrlabError(f"soundfont {path} is corrupt or not a SoundFont ({what}); {_FIX}")


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _chunks(fh: BinaryIO, start: int, end: int, path: Path) -> list[tuple[bytes, int, int]]:
    """(id, data offset, size) of the RIFF sub-chunks between file offsets start and end."""
    out = []
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        head = fh.read(8)
        cid, size = head[:4], struct.unpack("<I", head[4:])[0]
        if pos + 8 + size > end:
            raise _corrupt(path, f"chunk {cid!r} runs past the end of the file")
        out.append((cid, pos + 8, size))
        pos += 8 + size
        if size & 1:
            fh.seek(pos)
            if not _is_chunk_id(fh.read(4)):
                pos += 1
    return out


def _is_chunk_id(raw: bytes) -> bool:
    """RIFF pads odd chunks to even sizes, but some SF3 writers do not: no pad byte when
    an odd chunk is directly followed by a chunk id."""
    return len(raw) == 4 and all(32 <= b < 127 for b in raw)


def _lists(fh: BinaryIO, path: Path) -> dict[bytes, tuple[int, int]]:
    """The top-level ``LIST`` chunks of ``sfbk`` by form type: (data offset, end offset)."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise _corrupt(path, "no RIFF sfbk header")
    riff_end = min(8 + struct.unpack("<I", head[4:8])[0], os.fstat(fh.fileno()).st_size)
    lists = {}
    for cid, offset, size in _chunks(fh, 12, riff_end, path):
        if cid == b"LIST" and size >= 4:
            fh.seek(offset)
            lists[fh.read(4)] = (offset + 4, offset + size)
    for needed in (b"INFO", b"sdta", b"pdta"):
        if needed not in lists:
            raise _corrupt(path, f"no LIST {needed.decode()} chunk")
    return lists


def _records(fh: BinaryIO, path: Path, chunks: dict[bytes, tuple[int, int]],
             cid: bytes) -> list[tuple]:
    fmt, size = HYDRA[cid]
    if cid not in chunks:
        raise _corrupt(path, f"no {cid.decode()} chunk")
    offset, length = chunks[cid]
    if length % size or length < size:
        raise _corrupt(path, f"{cid.decode()} chunk size {length} is not a multiple of {size}")
    fh.seek(offset)
    return list(struct.iter_unpack(fmt, fh.read(length)))


def _parse(path: Path) -> SoundFont:
    with open(path, "rb") as fh:
        lists = _lists(fh, path)
        info = {cid: (off, size) for cid, off, size in _chunks(fh, *lists[b"INFO"], path)}
        name = ""
        if b"INAM" in info:
            fh.seek(info[b"INAM"][0])
            name = _text(fh.read(info[b"INAM"][1]))
        sdta = {cid: (off, size) for cid, off, size in _chunks(fh, *lists[b"sdta"], path)}
        pdta = {cid: (off, size) for cid, off, size in _chunks(fh, *lists[b"pdta"], path)}
        rec = {cid: _records(fh, path, pdta, cid) for cid in HYDRA}
    smpl_offset, smpl_size = sdta.get(b"smpl", (0, 0))
    phdr = rec[b"phdr"]
    presets = tuple(PresetHeader(_text(r[0]), r[2], r[1], i) for i, r in enumerate(phdr[:-1]))
    samples = tuple(SampleHeader(_text(r[0]), *r[1:]) for r in rec[b"shdr"][:-1])
    return SoundFont(
        path=path, name=name, presets=presets, smpl_offset=smpl_offset, smpl_size=smpl_size,
        preset_bags=tuple(r[3] for r in phdr),
        pbag=tuple(rec[b"pbag"]), pgen=tuple(rec[b"pgen"]),
        inst_names=tuple(_text(r[0]) for r in rec[b"inst"][:-1]),
        inst_bags=tuple(r[1] for r in rec[b"inst"]),
        ibag=tuple(rec[b"ibag"]), igen=tuple(rec[b"igen"]), samples=samples,
    )


@lru_cache(maxsize=32)
def _cached(path: str, size: int, mtime_ns: int) -> SoundFont:
    try:
        return _parse(Path(path))
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise _corrupt(Path(path), type(exc).__name__) from exc


def read_soundfont(path: Path) -> SoundFont:
    """Parse a soundfont's hydra, once per process per (path, size, mtime)."""
    path = Path(path).absolute()
    try:
        st = path.stat()
    except OSError as exc:
        raise InstrlabError(f"soundfont {path} cannot be read ({exc}); check the path") from exc
    try:
        return _cached(str(path), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise InstrlabError(f"soundfont {path} cannot be read ({exc}); check the path") from exc


def read_sample_bytes(sf: SoundFont, sample: SampleHeader) -> bytes:
    """A sample's raw data: 16-bit points start..end (SF2) or its compressed bytes (SF3)."""
    width = 1 if sample.compressed else 2
    lo, hi = sample.start * width, sample.end * width
    if not 0 <= lo <= hi <= sf.smpl_size:
        raise _corrupt(sf.path, f"sample {sample.name!r} lies outside the smpl chunk")
    with open(sf.path, "rb") as fh:
        fh.seek(sf.smpl_offset + lo)
        data = fh.read(hi - lo)
    if len(data) != hi - lo:
        raise _corrupt(sf.path, f"sample {sample.name!r} is truncated")
    return data
