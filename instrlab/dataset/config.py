"""The typed configuration of a dataset and the identity that names it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from instrlab import __version__
from instrlab.errors import InstrlabError
from instrlab.mixing import MixConfig
from instrlab.scores import ScoreConfig

CACHE_VARIABLE = "INSTRLAB_CACHE"
MAX_SAMPLES = 10_000_000


def cache_dir() -> Path:
    """Where datasets go by default: $INSTRLAB_CACHE, else $XDG_CACHE_HOME/instrlab."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "instrlab"


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides a dataset's content. Logged to MLflow as it is."""

    n_samples: int = 8000
    instruments: str = "seed12"
    synth: str = "fluidsynth"
    soundfont: str | None = None
    features: str = "logmel"
    seed: int = 0
    sample_rate: int = 44100
    reverb: bool = False
    chorus: bool = False
    score: ScoreConfig = field(default_factory=ScoreConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    feature_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.n_samples, int) or not 1 <= self.n_samples <= MAX_SAMPLES:
            raise InstrlabError(
                f"n_samples must be a whole number in 1..{MAX_SAMPLES}, got {self.n_samples}"
            )
        if self.seed < 0:
            raise InstrlabError(f"seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetConfig:
        """Inverse of :meth:`to_dict` (nested configs and tuples restored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InstrlabError(f"unknown dataset config keys: {', '.join(sorted(unknown))}")
        kw = dict(data)
        if isinstance(kw.get("score"), dict):
            kw["score"] = ScoreConfig(**{
                k: tuple(v) if isinstance(v, list) else v for k, v in kw["score"].items()
            })
        if isinstance(kw.get("mix"), dict):
            kw["mix"] = MixConfig(**kw["mix"])
        return cls(**kw)

    def flat_params(self) -> dict[str, Any]:
        """Flat ``data.*`` parameters for MLflow."""
        out: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    out[f"data.{key}.{sub}"] = v
            else:
                out[f"data.{key}"] = value
        return out


def identity_digest(identity: dict[str, Any]) -> str:
    """A short content hash of everything that decides a dataset's bytes."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_identity(cfg: DatasetConfig, synth_identity: dict[str, Any],
                   feature_params: dict[str, Any], instrument_set: dict[str, Any],
                   ) -> dict[str, Any]:
    """The full identity: config, resolved soundfont checksum, features, set, version."""
    return {
        "config": {k: v for k, v in cfg.to_dict().items() if k != "soundfont"},
        "synth": synth_identity,
        "features": feature_params,
        "instrument_set": instrument_set,
        "generator_version": __version__,
    }
