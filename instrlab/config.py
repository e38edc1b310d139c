"""An experiment's typed configuration: defaults, presets and overrides by dotted path.

The dataclasses are the one home of every default: ``ExperimentConfig()`` is what
``instrlab main``, ``mlflow run .`` and the Python API run when given nothing. A preset is
a named set of changes to it; the command line, ``--set``, a TOML file and MLproject
parameters are all overrides by dotted path (``train.epochs``, ``data.augment.gain_db``)
applied in one place, :func:`override`, which checks names and coerces strings by the
field's type.

The overrides themselves are generic: :mod:`instrlab.overrides`.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrlab.dataset.config import DEFAULT_FAMILIES, DatasetConfig, soundfont_names
from instrlab.errors import InstrlabError
from instrlab.models.factory import ModelConfig
from instrlab.overrides import coerce, override, read_toml
from instrlab.params import flat_params
from instrlab.scores import MUSIC_GENERATORS, MUSIC_SPAN, SEED_GENERATORS, ScoreConfig
from instrlab.synth.augment import AugmentConfig
from instrlab.training.config import SpecAugmentConfig, TrainConfig


def octave_label(octave: int) -> str:
    """``octave_down``, ``octave_up``, ``octave_up2``, ...: a metric-key suffix."""
    word = "down" if octave < 0 else "up"
    return f"octave_{word}{abs(octave) if abs(octave) > 1 else ''}"


def soundfont_stem(soundfont: str) -> str:
    """The soundfont's file stem, safe in an MLflow metric key."""
    return re.sub(r"[^\w.\- ]", "_", Path(soundfont).stem)


def on_soundfont(data: DatasetConfig, soundfont: str | None) -> DatasetConfig:
    """``data`` rendered with ``soundfont`` alone (none: the default soundfont)."""
    return dataclasses.replace(data, soundfont=soundfont, extra_soundfonts=(),
                               soundfont_per="sample", soundfont_exclude=(), soundfont_weights=())


@dataclass(frozen=True)
class EvalConfig:
    """Held-out figures every ``main`` run logs beside its test split (clean clips, seed 1;
    0 when training uses seed 1)."""

    octaves: tuple[int, ...] = (-1, 1)
    """The primary soundfont's protocol with every note moved by these octaves (48..60 and
    72..84 for seed12's 60..72): pitch robustness."""
    soundfonts: tuple[str, ...] = ()
    """More soundfonts to score the protocol on, each alone (e.g. a family held out of
    training such as "TimGM6mb.sf2"): one figure each."""
    samples: int = 500
    """Clips per figure; 0 switches the held-out figures off."""
    music: str | None = "corpus"
    """Also score real music: clips of this evaluation score generator (``corpus``: string
    quartets from music21's bundled corpus, never trained on) on the primary soundfont and
    on each of ``soundfonts``; none: no such figure."""

    def __post_init__(self) -> None:
        if any(o == 0 or not -3 <= o <= 3 for o in self.octaves):
            raise InstrlabError(f"eval.octaves (--heldout-octaves) must be non-zero whole "
                                f"octaves in -3..3, got {list(self.octaves)}")
        if not 0 <= self.samples <= 1_000_000:
            raise InstrlabError(f"eval.samples (--heldout-samples) must be in 0..1000000 "
                                f"(0: no held-out figures), got {self.samples}")
        stems = [soundfont_stem(s) for s in self.soundfonts]
        if len(set(stems)) != len(stems):
            raise InstrlabError(f"eval.soundfonts (--heldout-soundfont) name a file stem twice "
                                f"({', '.join(self.soundfonts)}); give each soundfont once")

    @property
    def active(self) -> bool:
        """Whether a run logs any held-out figure."""
        return bool(self.samples and (self.octaves or self.soundfonts or self.music))

    def clips(self, data: DatasetConfig, soundfont: str | None, octave: int = 0,
              music: str | None = None) -> DatasetConfig:
        """``samples`` evaluation clips of ``data``'s protocol rendered with ``soundfont``
        alone, every note moved by ``octave`` octaves (the same scores and labels); with
        ``music`` (a score generator) its clips instead of the protocol's random notes."""
        clean = on_soundfont(evaluation_data(data), soundfont)
        score = dataclasses.replace(clean.score,
                                    pitch_shift=clean.score.pitch_shift + 12 * octave)
        if music:
            score = dataclasses.replace(score, generators=((music, 1.0),))
        return dataclasses.replace(clean, n_samples=self.samples, score=score)

    def music_data(self, data: DatasetConfig, soundfont: str | None) -> DatasetConfig:
        """Evaluation clips of real music (``music``) rendered with ``soundfont`` alone."""
        return self.clips(data, soundfont, music=self.music)

    def octave_data(self, data: DatasetConfig, octave: int) -> DatasetConfig:
        """Evaluation clips of ``data``'s primary soundfont, every note moved by ``octave``."""
        return self.clips(data, data.soundfont, octave)

    def soundfont_data(self, data: DatasetConfig, soundfont: str) -> DatasetConfig:
        """Evaluation clips of ``data``'s protocol rendered with ``soundfont`` alone."""
        return self.clips(data, soundfont)

    def check(self, data: DatasetConfig, n_instruments: int) -> None:
        """Raise :class:`InstrlabError` for a figure no run of ``data`` can render."""
        from instrlab.synth.soundfonts import find_soundfont

        if not self.active:
            return
        for octave in self.octaves:
            self.octave_data(data, octave).score.validate(n_instruments)
        if self.music:
            try:
                self.music_data(data, data.soundfont).score.validate(n_instruments)
            except InstrlabError as exc:
                raise InstrlabError(f"--heldout-music: {exc}") from None
        for soundfont in self.soundfonts:
            try:
                find_soundfont(soundfont)
            except InstrlabError as exc:
                raise InstrlabError(f"--heldout-soundfont: {exc}") from None


TTA_SHIFTS = (-4, -2, 0, 2, 4)
"""The default model predicts from its input moved by these mel bins, the range its
training shifts (``SpecAugmentConfig.shift_bins``) cover: held-out families +0.01..0.04."""
DEFAULT_LR = 3e-3
"""The default's peak rate, with music in its clips: FluidR3 test 0.951 against 0.932 at 0.001."""


PROCEDURAL_FAMILIES = ("procedural:1", "procedural:2")
"""Two sample families instrlab synthesises (README "Procedural sample families"), in the
default's training data beside the recorded ones since 2026-12-07."""
PROCEDURAL_EXCLUDE = tuple((inst, fam) for inst in ("hammond_organ", "soprano_sax", "piccolo")
                           for fam in PROCEDURAL_FAMILIES)
"""Their organ, sax and piccolo recipes cost those instruments on held-out families."""
DEFAULT_WEIGHTS = (("FluidR3_GM.sf2", 3.0), *((fam, 0.5) for fam in PROCEDURAL_FAMILIES))
"""FluidR3_GM drawn three times as often as another recorded family, each procedural one
half as often (README "Weights per soundfont")."""
DEFAULT_EXTRAS = (*DEFAULT_FAMILIES, *PROCEDURAL_FAMILIES)
"""The default's soundfonts besides FluidR3_GM: the recorded families, then the procedural."""
FAMILY_BLEND = 0.5


def default_data() -> DatasetConfig:
    """``DatasetConfig()`` with a quarter music and a quarter other paces (README "Scores"),
    the procedural families at their weights, and half the instruments of an augmented clip
    blended from two families (README "Procedural families and family blend together")."""
    data = DatasetConfig()
    return dataclasses.replace(
        data, score=ScoreConfig(generators=MUSIC_GENERATORS, music_span=MUSIC_SPAN),
        extra_soundfonts=DEFAULT_EXTRAS,
        soundfont_exclude=PROCEDURAL_EXCLUDE, soundfont_weights=DEFAULT_WEIGHTS,
        augment=dataclasses.replace(data.augment, family_blend=FAMILY_BLEND))


def fit_defaults(data: DatasetConfig) -> DatasetConfig:
    """``data`` without the default's exclusions and weights that name a soundfont it does
    not render with (all of them with one soundfont): those follow the soundfonts, so
    ``--extra-soundfont`` alone needs no other change; pairs a user gives are kept, and
    checked against the soundfonts when the dataset is built. The default's family blend
    needs a second soundfont: with one it is off (another share is an error there). The
    procedural recipes are seed12's programs: with another instrument set the default's
    soundfonts are the recorded ones."""
    if data.instruments != "seed12" and data.extra_soundfonts == DEFAULT_EXTRAS:
        data = dataclasses.replace(data, extra_soundfonts=DEFAULT_FAMILIES)
    if not data.extra_soundfonts and data.augment.family_blend == FAMILY_BLEND:
        data = dataclasses.replace(data, augment=dataclasses.replace(data.augment,
                                                                     family_blend=0.0))
    names = set(soundfont_names(data)) if data.extra_soundfonts else set()
    exclude = tuple(p for p in data.soundfont_exclude
                    if p[1] in names or p not in PROCEDURAL_EXCLUDE)
    weights = tuple(p for p in data.soundfont_weights
                    if p[0] in names or p not in DEFAULT_WEIGHTS)
    if (exclude, weights) == (data.soundfont_exclude, data.soundfont_weights):
        return data
    return dataclasses.replace(data, soundfont_exclude=exclude, soundfont_weights=weights)


@dataclass(frozen=True)
class ExperimentConfig:
    """Dataset, model, training and held-out figures: everything one ``main`` run decides."""

    data: DatasetConfig = field(default_factory=default_data)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(tta_shifts=TTA_SHIFTS))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=DEFAULT_LR))
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", fit_defaults(self.data))  # frozen

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat_params(self) -> dict[str, Any]:
        """Flat ``data.*``, ``model.*``, ``train.*``, ``eval.*`` parameters for MLflow."""
        return flat_params("", self.to_dict())


# ---------------------------------------------------------------- presets


def _random_notes() -> dict[str, Any]:
    """The default until 2026-12-06: the recorded families, the seed's random notes alone,
    peak rate 0.001."""
    return {**_recorded(), "data.score": ScoreConfig(), "train.lr": TrainConfig().lr}


def _recorded() -> dict[str, Any]:
    """The default's training data before the procedural families: the four recorded
    families, each drawn alike, no family blend."""
    return {"data.extra_soundfonts": DEFAULT_FAMILIES, "data.soundfont_exclude": (),
            "data.soundfont_weights": (), "data.augment": DatasetConfig().augment}


def _plain() -> dict[str, Any]:
    """The seed's protocol with instrlab's model and schedule: FluidR3 alone, the seed's
    random notes at pitches 60..72, no robustness options."""
    return {**_random_notes(), "data.extra_soundfonts": (), "data.soundfont_per": "sample",
            "model.name": "mel_cnn", "model.tta_shifts": (), "data.augment": AugmentConfig(),
            "train.spec_augment": SpecAugmentConfig(), "train.epochs": 20,
            "train.tune_thresholds": False, "train.min_labels": 0}


def _seed() -> dict[str, Any]:
    """The seed exactly: 400x400 images, its CNN, a constant learning rate."""
    return {**_plain(), "data.features": "seed_image", "model.name": "seed_cnn",
            "train.scheduler": "none"}


PRESETS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "default": ("the robust pipeline: ExperimentConfig() as it is", dict),
    "plain": ("the seed's protocol with mel_cnn and onecycle, no robustness options", _plain),
    "seed": ("the seed exactly: seed_image features, seed_cnn, constant rate, 20 epochs",
             _seed),
    "random_notes": ("the recorded families and the seed's random notes alone at peak rate "
                     "0.001 (the default until 2026-12-06)", _random_notes),
    "recorded": ("the default on the four recorded families alone, no family blend (the "
                 "default until 2026-12-07)", _recorded),
}
"""Named changes to ``ExperimentConfig()``: name -> (description, overrides)."""


def preset(name: str) -> ExperimentConfig:
    """``ExperimentConfig()`` with the preset ``name`` applied."""
    if name not in PRESETS:
        raise InstrlabError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return override(ExperimentConfig(), PRESETS[name][1]())


EVAL_SEED = 1  # the evaluation clips' scores; training data uses seed 0 by default


def evaluation_data(data: DatasetConfig) -> DatasetConfig:
    """Evaluation clips: clean, the seed's random notes at the protocol's pitches, on the
    primary soundfont alone, seed 1 (0 when training used 1: no clip's notes were heard in
    training). Every clip is scored: none is set apart as a test split (``test_protocol``)."""
    clean = dataclasses.replace(data, seed=EVAL_SEED if data.seed != EVAL_SEED else 0,
                                augment=AugmentConfig(), test_protocol=False,
                                score=dataclasses.replace(data.score, register_share=0.0,
                                                          generators=SEED_GENERATORS,
                                                          music_span=0, midi_files=()))
    return on_soundfont(clean, data.soundfont)


def resolve(preset_name: str | None = None, config_file: str | Path | None = None,
            changes: Mapping[str, Any] | None = None,
            adjust: Callable[[ExperimentConfig], ExperimentConfig] | None = None,
            ) -> ExperimentConfig:
    """The one resolution order: preset, ``adjust`` (a command's own base, such as
    evaluation data), a TOML file's settings, then ``changes``.

    The preset is ``preset_name`` if given, else the file's ``preset``, else ``default``.
    """
    file_changes = read_toml(config_file) if config_file else {}
    from_file = file_changes.pop("preset", None)
    cfg = preset(str(preset_name or from_file or "default"))
    if adjust is not None:
        cfg = adjust(cfg)
    cfg = override(override(cfg, file_changes), changes or {})
    check_given(cfg, {**file_changes, **(changes or {})})
    return cfg


BLEND_NEEDS_TWO = ("augment family_blend mixes two soundfonts' renderings of an instrument: "
                   "add --extra-soundfont or set --augment-family-blend 0")


def check_given(cfg: ExperimentConfig, given: Mapping[str, Any]) -> None:
    """One-line errors for a setting the user gave that :func:`fit_defaults` took back:
    it takes back only the default's own values, and those may also be given by hand."""
    data, names = cfg.data, soundfont_names(cfg.data)
    hints = typing.get_type_hints(DatasetConfig)
    for key in ("soundfont_exclude", "soundfont_weights"):
        path = f"data.{key}"
        if path not in given:
            continue
        for pair in coerce(given[path], hints[key], path):
            if pair not in getattr(data, key):
                raise InstrlabError(f"{key} {pair[0]}={pair[1]}: "
                                    f"{pair[1 if key == 'soundfont_exclude' else 0]} is not one "
                                    f"of the soundfonts {', '.join(names)}; drop it or add the "
                                    "soundfont with --extra-soundfont")
    path = "data.augment.family_blend"
    if path in given and coerce(given[path], float, path) != data.augment.family_blend:
        raise InstrlabError(BLEND_NEEDS_TWO)
