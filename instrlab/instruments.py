"""Instruments and instrument sets, and the built-in ``seed12`` set."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instrlab.errors import InstrlabError, PluginError
from instrlab.registry import check_name, instrument_sets

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Instrument:
    """One labelled instrument: a General MIDI program (0-based) and where it plays."""

    name: str
    program: int
    bank: int = 0
    pitch_range: tuple[int, int] = (60, 72)
    velocity_range: tuple[int, int] = (50, 100)
    label: str = ""
    register: tuple[int, int] | None = None
    """The pitches it may play beyond ``pitch_range`` (``ScoreConfig.register_share``);
    None: ``pitch_range``. Must contain ``pitch_range``."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InstrlabError(
                f"instrument name {self.name!r} must be lower-case letters, digits and '_'"
            )
        if not 0 <= self.program <= 127:
            raise InstrlabError(
                f"instrument {self.name!r}: GM program {self.program} is out of range 0..127"
            )
        if not 0 <= self.bank <= 16383:
            raise InstrlabError(f"instrument {self.name!r}: bank {self.bank} is out of 0..16383")
        lo, hi = self.pitch_range
        if not 0 <= lo <= hi <= 127:
            raise InstrlabError(
                f"instrument {self.name!r}: pitch range {lo}..{hi} must satisfy "
                "0 <= low <= high <= 127"
            )
        if self.register is not None:
            rlo, rhi = self.register
            if not 0 <= rlo <= lo <= hi <= rhi <= 127:
                raise InstrlabError(
                    f"instrument {self.name!r}: register {rlo}..{rhi} must lie in 0..127 and "
                    f"contain the pitch range {lo}..{hi}; widen the register or drop it"
                )
        vlo, vhi = self.velocity_range
        if not 1 <= vlo <= vhi <= 127:
            raise InstrlabError(
                f"instrument {self.name!r}: velocity range {vlo}..{vhi} must satisfy "
                "1 <= low <= high <= 127"
            )

    @property
    def display_name(self) -> str:
        return self.label or self.name.replace("_", " ").title()

    @property
    def wide_range(self) -> tuple[int, int]:
        """The register, else the pitch range."""
        return self.register or self.pitch_range


@dataclass(frozen=True)
class InstrumentSet:
    """An ordered set of instruments; the order fixes the label columns."""

    name: str
    instruments: tuple[Instrument, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_name(self.name, "instrument set name", "rename the set")
        if not self.instruments:
            raise InstrlabError(f"instrument set {self.name!r} has no instruments")
        names = [i.name for i in self.instruments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InstrlabError(
                f"instrument set {self.name!r} repeats instrument names: {', '.join(dupes)}"
            )

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.instruments]

    def __len__(self) -> int:
        return len(self.instruments)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "instruments": [asdict(i) for i in self.instruments]}


def get_instrument_set(name: str) -> InstrumentSet:
    """The registered instrument set called ``name``."""
    result = instrument_sets.create(name)
    if not isinstance(result, InstrumentSet):
        raise InstrlabError(f"instrument set {name!r} did not build an InstrumentSet")
    return result


# (name, GM program, display label, register) in the seed's order; each register is the
# instrument's realistic range, widened to cover at least 48..84
SEED12 = (
    ("acoustic_grand_piano", 0, "Acoustic Grand Piano", (36, 96)),
    ("nylon_acoustic_guitar", 24, "Nylon Acoustic Guitar", (40, 88)),
    ("string_ensemble_1", 48, "String Ensemble 1", (36, 96)),
    ("piccolo", 72, "Piccolo", (48, 108)),
    ("celesta", 8, "Celesta", (48, 108)),
    ("acoustic_bass", 32, "Acoustic Bass", (28, 84)),
    ("trumpet", 56, "Trumpet", (48, 86)),
    ("square_wave_lead", 80, "Square Wave Lead", (36, 96)),
    ("hammond_organ", 16, "Hammond Organ", (36, 96)),
    ("violin", 40, "Violin", (48, 100)),
    ("soprano_sax", 64, "Soprano Sax", (48, 88)),
    ("new_age_pad", 88, "New Age Pad", (36, 96)),
)


@instrument_sets.register("seed12")
def seed12() -> InstrumentSet:
    """The seed experiment's 12 GM instruments, pitches 60..72 (the seed's protocol); each
    has a register covering at least 48..84 for ``ScoreConfig.register_share``."""
    return InstrumentSet(
        "seed12", tuple(Instrument(n, p, label=label, register=reg)
                        for n, p, label, reg in SEED12)
    )


def instrument_set_from_dict(data: dict[str, Any], origin: str) -> InstrumentSet:
    """Build an :class:`InstrumentSet` from TOML-shaped data; ``origin`` names it in errors."""
    try:
        name = data["name"]
        raw = data["instruments"]
        if not isinstance(raw, list):
            raise TypeError("'instruments' must be an array of tables")
        items = []
        for entry in raw:
            unknown = set(entry) - {"name", "program", "bank", "pitch_range", "velocity_range",
                                    "label", "register"}
            if unknown:
                raise KeyError(f"unknown instrument keys {sorted(unknown)}")
            kw = dict(entry)
            for key in ("pitch_range", "velocity_range", "register"):
                if key in kw:
                    kw[key] = tuple(int(v) for v in kw[key])
                    if len(kw[key]) != 2:
                        raise ValueError(f"{key} must be [low, high]")
            items.append(Instrument(**kw))
        return InstrumentSet(str(name), tuple(items))
    except InstrlabError as exc:
        raise PluginError(f"{origin}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise PluginError(
            f"{origin}: malformed instrument set ({exc}); expected name = \"...\" and "
            "[[instruments]] tables with name and program"
        ) from exc


def load_toml_instrument_set(path: Path) -> InstrumentSet:
    """Read a TOML instrument set and register it (``override = true`` replaces a name)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"{path}: not a readable TOML file ({exc})") from exc
    iset = instrument_set_from_dict(data, str(path))
    override = bool(data.get("override", False))

    def factory() -> InstrumentSet:
        return iset

    factory.__doc__ = str(data.get("description") or f"{len(iset)} instruments from {path.name}")
    instrument_sets.register(iset.name, factory, override=override)
    return iset
