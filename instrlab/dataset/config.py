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
from instrlab.params import flat_params
from instrlab.scores import ScoreConfig
from instrlab.synth.augment import AugmentConfig
from instrlab.synth.mixing import MixConfig

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
    """Everything that decides a dataset's content. Logged to MLflow as it is.

    ``DatasetConfig()`` is the training data of ``instrlab main``: the seed's protocol
    (8000 clips of seed12, FluidR3_GM, logmel) with the robust audio augmentation.
    """

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
    extra_soundfonts: tuple[str, ...] = ()
    """More soundfonts to draw from (with ``soundfont``), per sample or per instrument."""
    soundfont_per: str = "sample"
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        gain_db=6.0, stem_eq_db=10.0, stem_tilt_db=3.0, prob=0.8))
    """Audio augmentation of the training clips (``AugmentConfig()`` is off): 80 % of them
    get per-instrument gain, EQ and tilt, picked by measurement (README, "Generalization");
    evaluation datasets are clean (:func:`instrlab.config.evaluation_data`)."""

    def __post_init__(self) -> None:
        if self.soundfont_per not in ("sample", "instrument"):
            raise InstrlabError(
                f"soundfont_per must be 'sample' or 'instrument', got {self.soundfont_per!r}"
            )
        self.augment.validate()
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
        if isinstance(kw.get("augment"), dict):
            kw["augment"] = AugmentConfig(**{
                k: tuple(v) if isinstance(v, list) else v for k, v in kw["augment"].items()
            })
        if "extra_soundfonts" in kw:
            kw["extra_soundfonts"] = tuple(kw["extra_soundfonts"])
        return cls(**kw)

    def flat_params(self) -> dict[str, Any]:
        """Flat ``data.*`` parameters for MLflow."""
        return flat_params("data", self.to_dict())


def identity_digest(identity: dict[str, Any]) -> str:
    """A short content hash of everything that decides a dataset's bytes."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_identity(cfg: DatasetConfig, synth_identity: list[dict[str, Any]],
                   feature_params: dict[str, Any], instrument_set: dict[str, Any],
                   ) -> dict[str, Any]:
    """The full identity: config, resolved soundfont checksum, features, set, version."""
    return {
        # soundfont names are replaced by the checksums in the synth identities
        "config": {k: v for k, v in cfg.to_dict().items()
                   if k not in ("soundfont", "extra_soundfonts")},
        "synth": synth_identity,
        "features": feature_params,
        "instrument_set": instrument_set,
        "generator_version": __version__,
    }
