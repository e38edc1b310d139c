"""Writing a small SoundFont 2 file: one preset per instrument, one sample per key range.

The writing half of :mod:`instrlab.synth.sf2` (SoundFont 2.04 RIFF layout), for sample sets
that instrlab synthesises itself (:mod:`instrlab.synth.procedural`); FluidSynth then plays
them like any installed soundfont. No library on PyPI writes SF2 files from arrays
(sf2utils and sf2_loader only read), hence this module.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instrlab.synth.sf2 import GEN_INSTRUMENT, GEN_SAMPLE_ID, HYDRA

GEN_KEY_RANGE = 43
GEN_ATTACK_VOL_ENV = 34
GEN_HOLD_VOL_ENV = 35
GEN_DECAY_VOL_ENV = 36
GEN_SUSTAIN_VOL_ENV = 37
GEN_RELEASE_VOL_ENV = 38
GEN_SAMPLE_MODES = 54
SAMPLE_PAD = 46  # zero points after every sample (the specification's minimum)


@dataclass(frozen=True)
class Zone:
    """One sample of an instrument: the keys it plays, its root key and loop (None: none)."""

    audio: np.ndarray  # mono float, -1..1
    sample_rate: int
    root_key: int
    key_range: tuple[int, int]
    loop: tuple[int, int] | None = None


@dataclass(frozen=True)
class Envelope:
    """Volume envelope in seconds; ``sustain_db`` is the attenuation held while the key is
    down (0: the sample's own level)."""

    attack: float = 0.005
    hold: float = 0.0
    decay: float = 0.0
    sustain_db: float = 0.0
    release: float = 0.2


@dataclass(frozen=True)
class Preset:
    """One General MIDI preset: its name, bank, program, envelope and zones."""

    name: str
    program: int
    zones: tuple[Zone, ...]
    envelope: Envelope = Envelope()
    bank: int = 0


def _timecents(seconds: float) -> int:
    return max(-12000, min(8000, round(1200 * math.log2(max(seconds, 0.001)))))


def _chunk(cid: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return cid + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _record(cid: bytes, *values: object) -> bytes:
    """One hydra record of chunk ``cid``, in the layout the reader (:data:`sf2.HYDRA`) uses."""
    return struct.pack(HYDRA[cid][0], *values)


def _name(text: str) -> bytes:
    return text.encode("ascii", "replace")[:19].ljust(20, b"\0")


def _envelope_gens(env: Envelope) -> list[tuple[int, int]]:
    return [(GEN_ATTACK_VOL_ENV, _timecents(env.attack)), (GEN_HOLD_VOL_ENV, _timecents(env.hold)),
            (GEN_DECAY_VOL_ENV, _timecents(env.decay)),
            (GEN_SUSTAIN_VOL_ENV, round(10 * max(0.0, min(144.0, env.sustain_db)))),
            (GEN_RELEASE_VOL_ENV, _timecents(env.release))]


def soundfont_bytes(name: str, presets: list[Preset]) -> bytes:
    """The whole .sf2 file: 16-bit samples, one instrument per preset."""
    smpl: list[bytes] = []
    shdr, inst, ibag, igen = [], [], [], []
    phdr, pbag, pgen = [], [], []
    offset = 0
    for p_index, preset in enumerate(presets):
        inst.append(_record(b"inst", _name(preset.name), len(ibag)))
        for zone in preset.zones:
            pcm = np.clip(np.round(np.asarray(zone.audio, np.float64) * 32767), -32768, 32767)
            data = pcm.astype("<i2").tobytes() + b"\0\0" * SAMPLE_PAD
            start, end = offset, offset + len(pcm)
            loop = zone.loop or (0, len(pcm) - 1)
            shdr.append(_record(b"shdr", _name(f"{preset.name[:14]}{zone.root_key}"),
                                    start, end, start + loop[0], start + loop[1],
                                    zone.sample_rate, zone.root_key, 0, 0, 1))
            smpl.append(data)
            offset += len(data) // 2
            ibag.append(_record(b"ibag", len(igen), 0))
            gens = [(GEN_KEY_RANGE, zone.key_range[0] | zone.key_range[1] << 8),
                    *_envelope_gens(preset.envelope),
                    (GEN_SAMPLE_MODES, 1 if zone.loop else 0),
                    (GEN_SAMPLE_ID, len(shdr) - 1)]
            igen += [_record(b"igen", g, v & 0xFFFF) for g, v in gens]
        phdr.append(_record(b"phdr", _name(preset.name), preset.program, preset.bank,
                                len(pbag), 0, 0, 0))
        pbag.append(_record(b"pbag", len(pgen), 0))
        pgen.append(_record(b"pgen", GEN_INSTRUMENT, p_index))
    inst.append(_record(b"inst", _name("EOI"), len(ibag)))
    ibag.append(_record(b"ibag", len(igen), 0))
    igen.append(_record(b"igen", 0, 0))
    shdr.append(_record(b"shdr", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0))
    phdr.append(_record(b"phdr", _name("EOP"), 0, 0, len(pbag), 0, 0, 0))
    pbag.append(_record(b"pbag", len(pgen), 0))
    pgen.append(_record(b"pgen", 0, 0))
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)),
                 _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", name.encode("ascii") + b"\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", b"".join(smpl)))
    mod_end = struct.pack("<HHhHH", 0, 0, 0, 0, 0)
    pdta = _list(b"pdta", _chunk(b"phdr", b"".join(phdr)), _chunk(b"pbag", b"".join(pbag)),
                 _chunk(b"pmod", mod_end), _chunk(b"pgen", b"".join(pgen)),
                 _chunk(b"inst", b"".join(inst)), _chunk(b"ibag", b"".join(ibag)),
                 _chunk(b"imod", mod_end), _chunk(b"igen", b"".join(igen)),
                 _chunk(b"shdr", b"".join(shdr)))
    return _chunk(b"RIFF", b"sfbk" + info + sdta + pdta)


def write_soundfont(path: Path, name: str, presets: list[Preset]) -> Path:
    """Write the file atomically (a temporary name, then a rename): never half a soundfont."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(soundfont_bytes(name, presets))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
