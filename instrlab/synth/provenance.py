"""Sample provenance: which soundfonts play an instrument from the same recordings.

Every sample a preset reaches gets a set of identity keys:

- ``data``: SHA-256 (first 16 hex digits) of its 16-bit points, start to end. Only for
  uncompressed samples: SF3 re-encodes them (Ogg Vorbis), so their bytes say nothing.
- ``loop``: (sample rate, loop start relative to the sample start, loop length), when the
  loop is at least :data:`MIN_LOOP` points long. Converters and renamers keep loop points to
  the point, so this is what finds a recording renamed in an SF3 file ("tp_e3" ->
  "Trumpet E3"); shorter loops are single cycles of synthetic waves and prove nothing.
- ``name``: the normalized name (lower case, letters and digits, stereo marks "(L)", " R",
  "G2L" dropped) with the root key a zone plays it at (overridingRootKey, else the
  sample's original pitch).

A sample of one preset is *found* in another when any of its keys is among the other's.
Two presets **share samples** when at least :data:`SHARED_THRESHOLD` of either preset's
samples are found in the other (the larger of the two shares is the overlap figure): then
one is mostly the other's recordings, and a model trained on one re-hears them on the
other. Presets are what is compared, not files: a soundfont can reuse one instrument's
recordings and replace another's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from instrlab.errors import InstrlabError
from instrlab.instruments import Instrument, InstrumentSet
from instrlab.synth.sf2 import SampleHeader, SoundFont, read_sample_bytes, read_soundfont

SHARED_THRESHOLD = 0.5
MIN_LOOP = 32
KEY_KINDS = ("data", "loop", "name")

_STEREO_MARK = re.compile(r"(\s*\([lr]\)|\s+[lr]|(?<=\d)[lr])$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class SampleIdentity:
    """One sample of a preset: its name and the keys that identify its recording."""

    name: str
    keys: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class PresetSamples:
    """The samples one soundfont's preset plays for one instrument."""

    soundfont: str
    instrument: str
    preset: str
    bank: int
    program: int
    samples: tuple[SampleIdentity, ...]


@dataclass(frozen=True)
class Overlap:
    """How much of two presets' samples are the same recordings."""

    instrument: str
    a: str
    b: str
    found_a: int  # samples of a found in b
    found_b: int  # samples of b found in a
    size_a: int
    size_b: int
    by: tuple[str, ...]  # key kinds that matched anything

    @property
    def share_a(self) -> float:
        return self.found_a / self.size_a if self.size_a else 0.0

    @property
    def share_b(self) -> float:
        return self.found_b / self.size_b if self.size_b else 0.0

    @property
    def overlap(self) -> float:
        """The larger share: how much of one preset is the other's recordings."""
        return max(self.share_a, self.share_b)

    @property
    def shared(self) -> bool:
        return self.overlap >= SHARED_THRESHOLD

    def to_dict(self) -> dict[str, object]:
        return {"instrument": self.instrument, "a": self.a, "b": self.b,
                "shared": self.shared, "overlap": round(self.overlap, 4),
                "a_found_in_b": f"{self.found_a}/{self.size_a}",
                "b_found_in_a": f"{self.found_b}/{self.size_b}", "matched_by": list(self.by)}


def normalize_name(name: str) -> str:
    """A sample name without case, punctuation or stereo marks: "Celesta C 4(L)" -> celestac4."""
    text = name.strip().lower()
    return _NOT_ALNUM.sub("", _STEREO_MARK.sub("", text))


def _loop_key(sample: SampleHeader) -> tuple[str, str] | None:
    start = sample.start_loop if sample.compressed else sample.start_loop - sample.start
    length = sample.end_loop - sample.start_loop
    if length < MIN_LOOP or start < 0:
        return None
    return "loop", f"{sample.sample_rate}:{start}:{length}"


def _data_key(sf: SoundFont, sample: SampleHeader) -> tuple[str, str] | None:
    if sample.compressed or sample.rom or sample.end <= sample.start:
        return None
    return "data", hashlib.sha256(read_sample_bytes(sf, sample)).hexdigest()[:16]


@lru_cache(maxsize=512)
def _preset_samples(path: str, size: int, mtime_ns: int, bank: int, program: int,
                    instrument: str) -> PresetSamples:
    sf = read_soundfont(Path(path))
    preset = sf.find_preset(bank, program)
    name = Path(path).name
    if preset is None:
        raise InstrlabError(
            f"soundfont {name} has no preset for program {program} (bank {bank}, nor bank 0) "
            f"of instrument {instrument!r}; leave that soundfont out or fix the instrument set"
        )
    roots: dict[SampleHeader, set[int]] = {}
    for zone in sf.preset_zones(preset):
        roots.setdefault(zone.sample, set()).add(zone.root_key)
    samples = tuple(SampleIdentity(sample.name, _keys(sf, sample, keys))
                    for sample, keys in roots.items())
    return PresetSamples(name, instrument, preset.name, preset.bank, preset.program, samples)


def _keys(sf: SoundFont, sample: SampleHeader, root_keys: set[int]) -> frozenset[tuple[str, str]]:
    keys = {key for key in (_loop_key(sample), _data_key(sf, sample)) if key is not None}
    norm = normalize_name(sample.name)
    if norm:
        keys |= {("name", f"{norm}@{root}") for root in root_keys}
    return frozenset(keys)


def preset_samples(path: Path, instrument: Instrument) -> PresetSamples:
    """The sample identities of ``instrument``'s preset in a soundfont (cached per file)."""
    path = Path(path).absolute()
    try:
        st = path.stat()
    except OSError as exc:
        raise InstrlabError(f"soundfont {path} cannot be read ({exc}); check the path") from exc
    return _preset_samples(str(path), st.st_size, st.st_mtime_ns, instrument.bank,
                           instrument.program, instrument.name)


def compare(a: PresetSamples, b: PresetSamples, a_label: str = "", b_label: str = "") -> Overlap:
    """How many of each preset's samples are found in the other, by any identity key."""
    keys_a = frozenset().union(*(s.keys for s in a.samples))
    keys_b = frozenset().union(*(s.keys for s in b.samples))
    common = keys_a & keys_b
    by = tuple(kind for kind in KEY_KINDS if any(key[0] == kind for key in common))
    return Overlap(
        instrument=a.instrument, a=a_label or a.soundfont, b=b_label or b.soundfont,
        found_a=sum(bool(s.keys & keys_b) for s in a.samples),
        found_b=sum(bool(s.keys & keys_a) for s in b.samples),
        size_a=len(a.samples), size_b=len(b.samples), by=by,
    )


def soundfont_labels(paths: Sequence[str | Path]) -> list[str]:
    """File names, or whole paths where two soundfonts share a file name."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def collect(paths: Sequence[Path], iset: InstrumentSet) -> dict[str, list[PresetSamples]]:
    """Per instrument of the set, each soundfont's preset samples (in the order of paths)."""
    return {inst.name: [preset_samples(p, inst) for p in paths] for inst in iset.instruments}


def compare_soundfonts(paths: Sequence[Path], iset: InstrumentSet,
                       labels: Sequence[str] | None = None) -> list[Overlap]:
    """Every pair of soundfonts (i < j), for every instrument of the set, in set order;
    ``labels`` name the soundfonts (default: :func:`soundfont_labels`)."""
    labels = list(labels or soundfont_labels(paths))
    out = []
    for presets in collect(paths, iset).values():
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                out.append(compare(presets[i], presets[j], labels[i], labels[j]))
    return out


def sample_families(overlaps: Sequence[Overlap]) -> dict[str, list[list[str]]]:
    """Per instrument, soundfonts grouped so that presets sharing samples (directly or
    through another soundfont) are one family."""
    parents: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parents.setdefault(node, node) != node:
            node = parents[node]
        return node

    for o in overlaps:
        ra, rb = root((o.instrument, o.a)), root((o.instrument, o.b))
        if o.shared and ra != rb:
            parents[rb] = ra
    families: dict[str, dict[tuple[str, str], list[str]]] = {}
    for node in parents:
        families.setdefault(node[0], {}).setdefault(root(node), []).append(node[1])
    return {inst: list(groups.values()) for inst, groups in families.items()}
