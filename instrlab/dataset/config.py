"""The typed configuration of a dataset and the identity that names it."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from instrlab import __version__
from instrlab.errors import InstrlabError
from instrlab.instruments import InstrumentSet
from instrlab.params import flat_params
from instrlab.registry import check_name
from instrlab.scores import SCORES_VERSION, SEED_GENERATORS, ScoreConfig
from instrlab.scores.midi_files import file_digests
from instrlab.synth.augment import AugmentConfig
from instrlab.synth.mixing import MixConfig
from instrlab.synth.soundfonts import DEFAULT_SOUNDFONT

MAX_SAMPLES = 10_000_000
MAX_COMPONENT_BYTES = 255
DEFAULT_FAMILIES = ("MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2")


def safe_component(name: str) -> str:
    """``name`` if it is one harmless path component (no separator, not ``.`` or ``..``).

    For directory names built from configs under the cache: ``root / safe_component(name)``
    cannot leave ``root``.
    """
    seps = {"/", "\\", "\0", os.sep, os.altsep or "/"}
    if (not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in seps)
            or len(name.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES):
        raise InstrlabError(
            f"{name!r} is not a safe directory name (one path component of at most "
            f"{MAX_COMPONENT_BYTES} bytes, no '/', not '.' or '..'); use registered names"
        )
    return name


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides a dataset's content. Logged to MLflow as it is.

    ``DatasetConfig()`` is the seed's protocol (8000 clips of seed12, logmel) with every
    installed recorded sample family: each instrument of a clip is rendered with one of four
    soundfonts, with the robust audio augmentation. ``instrlab main`` trains on
    :func:`instrlab.config.default_data` (music, the procedural families, family blend).
    The test split stays the seed's FluidR3 protocol (``test_protocol``).
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
    extra_soundfonts: tuple[str, ...] = DEFAULT_FAMILIES
    """More soundfonts to draw from (with ``soundfont``), per sample or per instrument. The
    default: every sample family that ``scripts/setup.sh`` installs besides FluidR3 (Debian
    musescore-general-soundfont-small, timgm6mb-soundfont, csound-soundfont)."""
    soundfont_per: str = "instrument"
    soundfont_exclude: tuple[tuple[str, str], ...] = ()
    """(instrument, soundfont) pairs never rendered, with ``soundfont_per`` "instrument":
    presets that share a held-out family's recordings (:mod:`instrlab.folds`). Soundfonts
    are named as in ``soundfont``/``extra_soundfonts``."""
    soundfont_weights: tuple[tuple[str, float], ...] = ()
    """(soundfont, weight) pairs: how often each soundfont is drawn, relative to the others
    (1 for those not listed; empty: all alike). The primary is named as ``soundfont``, or
    FluidR3_GM.sf2 when that is unset."""
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        gain_db=6.0, stem_eq_db=10.0, stem_tilt_db=3.0, prob=0.8))
    """Audio augmentation of the training clips (``AugmentConfig()`` is off): 80 % of them
    get per-instrument gain, EQ and tilt, picked by measurement (README, "Generalization");
    evaluation datasets are clean (:func:`instrlab.config.evaluation_data`)."""
    test_protocol: bool = True
    """Clips of the test split are the seed's protocol whatever the training clips are:
    rendered with ``soundfont`` alone (an instrument that ``soundfont_exclude`` bars from
    it: with the first soundfont it may use), the seed's random notes (``seed_random``) in
    each instrument's ``pitch_range`` (``score.register_share`` 0) and, through
    ``AugmentConfig.train_only``, clean. So a model trained on several soundfonts, wide
    registers and music still reports its test figure on the seed's protocol."""

    def __post_init__(self) -> None:
        for key in ("instruments", "features", "synth"):  # they name cache directories
            check_name(getattr(self, key), f"data.{key}", "use a name `instrlab list` shows")
        if self.soundfont_per not in ("sample", "instrument"):
            raise InstrlabError(
                f"soundfont_per must be 'sample' or 'instrument', got {self.soundfont_per!r}"
            )
        self.augment.validate()
        if self.soundfont_exclude:  # the names are checked where the soundfonts are known
            for pair in self.soundfont_exclude:
                if len(pair) != 2 or not all(isinstance(n, str) and n for n in pair):
                    raise InstrlabError(f"soundfont_exclude {pair!r} must be INSTRUMENT="
                                        "SOUNDFONT, e.g. violin=TimGM6mb.sf2")
            if self.soundfont_per != "instrument":
                raise InstrlabError("soundfont_exclude needs soundfont_per = 'instrument'")
        check_weight_pairs(self.soundfont_weights)
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
        try:
            return cls._from_dict(dict(data))
        except TypeError as exc:  # a nested config written by another instrlab version
            raise InstrlabError(f"dataset config does not fit this instrlab ({exc}); rebuild "
                                "the dataset with this version") from None

    @classmethod
    def _from_dict(cls, kw: dict[str, Any]) -> DatasetConfig:
        if isinstance(kw.get("score"), dict):
            score = {k: tuple(v) if isinstance(v, list) else v for k, v in kw["score"].items()}
            if "generators" in score:  # JSON keeps the (name, weight) pairs as lists
                score["generators"] = tuple((str(n), float(w)) for n, w in score["generators"])
            kw["score"] = ScoreConfig(**score)
        if isinstance(kw.get("mix"), dict):
            kw["mix"] = MixConfig(**kw["mix"])
        if isinstance(kw.get("augment"), dict):
            kw["augment"] = AugmentConfig(**{
                k: tuple(v) if isinstance(v, list) else v for k, v in kw["augment"].items()
            })
        if "extra_soundfonts" in kw:
            kw["extra_soundfonts"] = tuple(kw["extra_soundfonts"])
        if "soundfont_exclude" in kw:
            kw["soundfont_exclude"] = tuple(tuple(p) for p in kw["soundfont_exclude"])
        if "soundfont_weights" in kw:
            kw["soundfont_weights"] = tuple((str(n), float(w))
                                            for n, w in kw["soundfont_weights"])
        return cls(**kw)

    def flat_params(self) -> dict[str, Any]:
        """Flat ``data.*`` parameters for MLflow."""
        return flat_params("data", self.to_dict())


def allowed_soundfonts(cfg: DatasetConfig, iset: InstrumentSet) -> list[list[int]]:
    """Per instrument of the set, the soundfonts (indices) it may be rendered with; empty
    when nothing is excluded (every soundfont, drawn as before exclusions existed)."""
    if not cfg.soundfont_exclude:
        return []
    names = soundfont_names(cfg)
    unknown = {i for i, _ in cfg.soundfont_exclude} - set(iset.names)
    if unknown:
        raise InstrlabError(f"soundfont_exclude names instruments {sorted(unknown)} that "
                            f"{iset.name} does not have")
    for inst, sf in cfg.soundfont_exclude:
        if sf not in names:
            raise InstrlabError(f"soundfont_exclude {inst}={sf}: {sf} is not one of the "
                                f"soundfonts {', '.join(names)}; name one of them")
    allowed = [[j for j, sf in enumerate(names) if (inst, sf) not in cfg.soundfont_exclude]
               for inst in iset.names]
    for inst, left in zip(iset.names, allowed):
        if not left:
            raise InstrlabError(f"soundfont_exclude leaves no soundfont to render {inst} "
                                "with; add a soundfont or exclude less")
    return allowed


def check_weight_pairs(pairs: tuple[tuple[str, float], ...]) -> None:
    """(name, weight) pairs with positive numbers, each name once: else one line."""
    seen: set[str] = set()
    for pair in pairs:
        name, weight = (pair[0], pair[1]) if len(pair) == 2 else (str(pair), math.nan)
        if name in seen:
            raise InstrlabError(f"soundfont weight {name}: given twice; name it once")
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise InstrlabError(f"soundfont weight {name}={weight}: must be a positive "
                                "number (leave a soundfont out to never draw it)")
        seen.add(name)


def soundfont_names(cfg: DatasetConfig) -> list[str]:
    """The dataset's soundfonts as weights and exclusions name them, the primary first (by
    its default file name when unset)."""
    return [cfg.soundfont or DEFAULT_SOUNDFONT, *cfg.extra_soundfonts]


def soundfont_weights(cfg: DatasetConfig) -> list[float] | None:
    """The weight of each soundfont (primary first), or None when none is given; a name that
    is not one of the dataset's soundfonts is a one-line error."""
    if not cfg.soundfont_weights:
        return None
    names = soundfont_names(cfg)
    weights = [1.0] * len(names)
    for name, weight in cfg.soundfont_weights:
        if name not in names:
            raise InstrlabError(f"soundfont weight {name}: not one of the soundfonts "
                                f"{', '.join(names)}; name one of them")
        weights[names.index(name)] = float(weight)
    return weights


def identity_digest(identity: dict[str, Any]) -> str:
    """A short content hash of everything that decides a dataset's bytes."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_identity(cfg: DatasetConfig, synth_identity: list[dict[str, Any]],
                   feature_params: dict[str, Any], instrument_set: dict[str, Any],
                   plugin_code: dict[str, str] | None = None) -> dict[str, Any]:
    """The full identity: config, resolved soundfont checksum, features, set, version, the
    checksums of the MIDI files that scores are cut from, and of the plugins' code."""
    config = {k: v for k, v in cfg.to_dict().items()
              # soundfont names are replaced by the checksums in the synth identities
              if k not in ("soundfont", "extra_soundfonts", "soundfont_exclude")}
    if cfg.soundfont_exclude:  # by position in the soundfont list; absent when empty, so
        names = soundfont_names(cfg)  # older datasets keep their names
        config["soundfont_exclude"] = sorted([i, names.index(s)] for i, s in cfg.soundfont_exclude)
    if cfg.soundfont_weights:  # by position, as the exclusions; absent when empty
        config["soundfont_weights"] = soundfont_weights(cfg)
    else:
        del config["soundfont_weights"]
    # settings that change nothing are absent, so older datasets keep their names
    if not cfg.augment.family_blend:
        del config["augment"]["family_blend"]
    if cfg.score.generators == SEED_GENERATORS:
        del config["score"]["generators"]
    else:
        config["score"]["version"] = SCORES_VERSION
    if not cfg.score.music_span:
        del config["score"]["music_span"]
    if not cfg.score.register_share:
        del config["score"]["register_share"]
        instrument_set = {**instrument_set, "instruments": [
            {k: v for k, v in inst.items() if k != "register"}
            for inst in instrument_set["instruments"]]}
        if not cfg.extra_soundfonts and "generators" not in config["score"]:
            del config["test_protocol"]
    identity = {
        "config": config,
        "synth": synth_identity,
        "features": feature_params,
        "instrument_set": instrument_set,
        "generator_version": __version__,
    }
    # MIDI files count by content, as soundfonts do: their paths give way to checksums
    del config["score"]["midi_files"]
    if cfg.score.midi_files:
        identity["score_files"] = file_digests(cfg.score.midi_files)
    else:
        del config["score"]["midi_map"]
    if plugin_code:  # absent without plugins, so built-in datasets keep their names
        identity["plugin_code"] = dict(sorted(plugin_code.items()))
    return identity
