"""Command-line options that set configuration fields, declared once for every command.

An option names the dotted config path it sets; it has no default of its own (argparse's
``SUPPRESS``), so an option not given falls through to the dataclass default, and
``--help`` prints that default by reading the config. Resolution order, lowest first:
preset, ``--config`` file, ``--set``, then the options themselves.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from instrlab import config as cfgmod
from instrlab import overrides
from instrlab.config import ExperimentConfig
from instrlab.synth.augment import AugmentConfig
from instrlab.training.config import SCHEDULERS, SpecAugmentConfig

DEST = "config:"  # argparse dest prefix of options that set a config path


@dataclass(frozen=True)
class Opt:
    """One option: ``flag`` sets ``path``; ``const`` makes it a switch that sets that value;
    ``words``: its values may also come as one string of words (an MLproject parameter)."""

    flag: str
    path: str
    help: str
    metavar: str | None = None
    choices: Sequence[str] | None = None
    const: Any = None
    nargs: int | str | None = None
    append: bool = False
    words: bool = False


DATASET = (
    Opt("--n-samples", "data.n_samples", "number of clips to synthesize (the seed: 8000)", "N"),
    Opt("--instruments", "data.instruments", "registered instrument set (see `instrlab list`)",
        "NAME"),
    Opt("--synth", "data.synth", "synth backend", "NAME"),
    Opt("--soundfont", "data.soundfont", "SoundFont path or file name, or procedural:SEED "
        "(a sample family instrlab synthesises; none: $INSTRLAB_SOUNDFONT or FluidR3_GM.sf2 "
        "found in the usual system places)", "SF2"),
    Opt("--features", "data.features", "feature extractor (seed_image is the seed's input)",
        "NAME"),
    Opt("--seed", "data.seed", "master seed: same seed, same bytes", "N"),
    Opt("--min-instruments", "data.score.min_instruments", "fewest instruments in a clip", "N"),
    Opt("--max-instruments", "data.score.max_instruments", "most instruments in a clip", "N"),
    Opt("--clip-seconds", "data.score.clip_seconds", "clip length in seconds", "S"),
    Opt("--score-generators", "data.score.generators", "score generators and their shares of "
        "the training clips, e.g. seed_random=0.5 melody=0.5 (see `instrlab list`; the test "
        "split stays seed_random)", "NAME=WEIGHT", nargs="+", words=True),
    Opt("--music-span", "data.score.music_span", "semitones the music generators' parts may "
        "reach beyond each instrument's pitch range, either side (each part starts inside "
        "it); seed_random ignores it", "N"),
    Opt("--midi-files", "data.score.midi_files", "MIDI files, or directories of *.mid/*.midi "
        "(not recursive), that the midi_files score generator cuts into labelled clips of "
        "--clip-seconds; use with --score-generators midi_files=1 (unusable files are skipped "
        "with a warning)", "PATH", nargs="+"),  # not words: a path may hold spaces
    Opt("--midi-map", "data.score.midi_map", "how --midi-files tracks become instruments of "
        "the set: program, the one with the track's GM program; family, else the first of "
        "its GM family (program // 8); other tracks and drums are skipped",
        choices=("program", "family")),
    Opt("--reverb", "data.reverb", "render with FluidSynth's reverb (slower)", const=True),
    Opt("--chorus", "data.chorus", "render with FluidSynth's chorus (slower)", const=True),
    Opt("--extra-soundfont", "data.extra_soundfonts", "render with this soundfont too "
        "(repeatable; replaces the default list; none: --soundfont alone; procedural:SEED: a "
        "synthesised family); see "
        "--soundfont-per", "SOUNDFONT", append=True),
    Opt("--soundfont-per", "data.soundfont_per", "with extra soundfonts: each clip draws one "
        "soundfont, or each instrument its own", choices=("sample", "instrument")),
    Opt("--soundfont-weight", "data.soundfont_weights", "how often each soundfont is drawn, "
        "relative to the others (1 for those not named), e.g. FluidR3_GM.sf2=2 "
        "procedural:1=0.5; the primary is named as --soundfont, or FluidR3_GM.sf2",
        "NAME=WEIGHT", nargs="+", words=True),
    Opt("--soundfont-exclude", "data.soundfont_exclude", "never render INSTRUMENT with "
        "SOUNDFONT (with --soundfont-per instrument), e.g. hammond_organ=procedural:1; "
        "instrlab folds adds them to each fold's own", "INSTRUMENT=SOUNDFONT", nargs="+",
        words=True),
)

AUGMENT = (  # before the fields, so that --no-augment --augment-gain-db 3 keeps the 3
    Opt("--no-augment", "data.augment", "turn every audio augmentation off (clean clips, as "
        "the seed)", const=AugmentConfig()),
    Opt("--augment-gain-db", "data.augment.gain_db", "move each instrument's level by up to "
        "+-DB before mixing", "DB"),
    Opt("--augment-stem-eq-db", "data.augment.stem_eq_db", "give each instrument its own smooth "
        "random EQ within +-DB (50 Hz..16 kHz): another recording of it", "DB"),
    Opt("--augment-stem-eq-knots", "data.augment.stem_eq_knots", "control points of the stem "
        "EQ and tilt; more points, finer curves", "N"),
    Opt("--augment-stem-tilt-db", "data.augment.stem_tilt_db", "tilt each instrument by up to "
        "+-DB per octave around 1 kHz: darker or brighter recordings", "DB"),
    Opt("--augment-formant-shift", "data.augment.formant_shift", "render each instrument up to "
        "+-N semitones off pitch and resample it back: a larger or smaller body", "N"),
    Opt("--augment-family-blend", "data.augment.family_blend", "share of each augmented "
        "clip's instruments rendered by a second of their soundfonts too and mixed in at "
        "25..75 %%: timbres between the sample families", "P"),
    Opt("--augment-voicing", "data.augment.voicing", "vary each instrument's SoundFont envelope,"
        " filter and vibrato by S (0..1) of their ranges", "S"),
    Opt("--augment-transpose", "data.augment.transpose", "move each instrument's notes by up to "
        "+-N semitones, so other sample zones of the soundfont sound", "N"),
    Opt("--augment-tilt-db", "data.augment.tilt_db", "random spectral tilt of the mix, up to "
        "+-DB per octave", "DB"),
    Opt("--augment-reverb-prob", "data.augment.reverb_prob", "share of clips put in a synthetic "
        "room, RT60 0.2..1.2 s", "P"),
    Opt("--augment-noise-snr", "data.augment.noise_snr_db", "add white noise at an SNR in "
        "LOW..HIGH dB", ("LOW", "HIGH"), nargs=2),
    Opt("--augment-lowpass-prob", "data.augment.lowpass_prob", "share of clips band-limited "
        "at a cutoff drawn from data.augment.lowpass_hz: a sample set stored at a lower rate",
        "P"),
    Opt("--augment-prob", "data.augment.prob", "share of training clips augmented; the rest "
        "stay clean", "P"),
    Opt("--augment-all-splits", "data.augment.train_only", "augment validation and test clips "
        "too (default: training clips only)", const=False),
)

MODEL = (
    Opt("--model", "model.name", "registered model (seed_cnn reproduces the seed with "
        "--features seed_image)", "NAME"),
    Opt("--model-param", "model.params", "keyword argument for the model factory "
        "(repeatable)", "KEY=VALUE", append=True),
    Opt("--tta-shifts", "model.tta_shifts", "predict from the mean logits over the spectrum "
        "moved by each of these mel bins, e.g. -4 -2 0 2 4 for a model trained with "
        "--spec-shift-bins 4 (none: the input alone)", "N", nargs="+", words=True),
)

TRAINING = (
    Opt("--epochs", "train.epochs", "training epochs (the seed: 20)", "N"),
    Opt("--batch-size", "train.batch_size", "batch size", "N"),
    Opt("--lr", "train.lr", "Adam learning rate (onecycle's peak)", "LR"),
    Opt("--weight-decay", "train.weight_decay", "Adam weight decay", "WD"),
    Opt("--scheduler", "train.scheduler", "learning-rate schedule (the seed: none)",
        choices=SCHEDULERS),
    Opt("--early-stopping", "train.early_stopping_patience", "stop after PATIENCE epochs "
        "without a better validation macro F1 (0: off)", "PATIENCE"),
    Opt("--tune-thresholds", "train.tune_thresholds", "pick each instrument's threshold on the "
        "validation split; false uses 0.5 for all, as the seed", "BOOL", nargs=-1),
    Opt("--min-labels", "train.min_labels", "every clip holds at least N instruments: a clip "
        "with fewer over threshold is given its N most probable ones (0: thresholds alone)",
        "N"),
    Opt("--ema-decay", "train.ema_decay", "validate and keep an exponential moving average of "
        "the weights with decay D (0: off)", "D"),
    Opt("--train-seed", "train.seed", "seed of weight init, shuffling and batch augmentation",
        "N"),
    Opt("--device", "train.device", "auto (CUDA when available, else CPU), cpu or cuda",
        "DEVICE"),
    Opt("--threads", "train.num_threads", "CPU threads for torch (0: all cores)", "N"),
)

SPEC_AUGMENT = (
    Opt("--no-spec-augment", "train.spec_augment", "turn every training-time augmentation off "
        "(as the seed)", const=SpecAugmentConfig()),
    Opt("--spec-eq-db", "train.spec_augment.eq_db", "random EQ over the mel bins within +-DB",
        "DB"),
    Opt("--spec-eq-knots", "train.spec_augment.eq_knots", "control points of that EQ curve; "
        "more points move neighbouring partials independently", "N"),
    Opt("--spec-freq-masks", "train.spec_augment.freq_masks", "SpecAugment: frequency bands "
        "blanked per clip", "N"),
    Opt("--spec-time-masks", "train.spec_augment.time_masks", "SpecAugment: time spans blanked "
        "per clip", "N"),
    Opt("--spec-shift-bins", "train.spec_augment.shift_bins", "move each clip's spectrum by up "
        "to +-N mel bins", "N"),
    Opt("--mixup-prob", "train.spec_augment.mixup_prob", "share of clips mixed with another "
        "clip of the batch, labels united", "P"),
    Opt("--spec-style-mix", "train.spec_augment.style_mix_prob", "share of clips whose per-bin "
        "mean and spread over time are mixed with another clip's (frequency-wise MixStyle)",
        "P"),
    Opt("--spec-style-mix-alpha", "train.spec_augment.style_mix_alpha", "Beta(A, A) of that "
        "mixing weight", "A"),
)

HELDOUT = (
    Opt("--heldout-octaves", "eval.octaves", "also score clips of the primary soundfont with "
        "every note moved by N octaves (none: no such figure)", "N", nargs="+", words=True),
    Opt("--heldout-soundfont", "eval.soundfonts", "also score clips rendered with this "
        "soundfont alone, e.g. a family held out of training (repeatable)", "SOUNDFONT",
        append=True, words=True),
    Opt("--heldout-music", "eval.music", "also score real music: clips of this evaluation "
        "score generator (corpus: string quartets from music21's corpus, never trained on) "
        "on the primary soundfont and each --heldout-soundfont (none: no such figure)",
        "NAME"),
    Opt("--heldout-samples", "eval.samples", "clean clips (seed 1) per held-out figure; 0 "
        "turns the held-out figures off", "N"),
)


# ---------------------------------------------------------------- building the parser


def hint_at(path: str) -> Any:
    """The declared type of the config field at ``path``."""
    obj: Any = ExperimentConfig
    hint: Any = ExperimentConfig
    for part in path.split("."):
        hint = typing.get_type_hints(obj)[part]
        obj = hint
    return hint


def show(value: Any) -> str:
    """A default as the command line would spell it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, (tuple, list)) and len(v) == 2 and isinstance(v[0], str)
            for v in value):  # (name, number) pairs, as score generators: NAME=WEIGHT
        return " ".join(f"{k}={show(v)}" for k, v in value)
    if isinstance(value, (tuple, list)):
        return " ".join(show(v) for v in value) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={show(v)}" for k, v in value.items()) or "none"
    return str(value)


def _argtype(hint: Any) -> Callable[[str], Any]:
    """A parse-time check for numbers (so ``--epochs x`` fails as argparse does)."""
    return hint if hint in (int, float) else str


def add_options(group: Any, options: Sequence[Opt], base: Any) -> None:
    """Add ``options`` to an argparse group; ``base`` supplies the defaults shown."""
    for o in options:
        dest = DEST + o.path
        if o.const is not None:
            group.add_argument(o.flag, dest=dest, action="store_const", const=o.const,
                               default=argparse.SUPPRESS, help=o.help)
            continue
        default = overrides.get(base, o.path)
        kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "metavar": o.metavar,
                              "help": f"{o.help} (default: {show(default)})"}
        if o.choices:
            kw.update(choices=list(o.choices), metavar=None)
        elif o.nargs == -1:  # a bool that may stand alone: --tune-thresholds [BOOL]
            kw.update(nargs="?", const="true")
        elif o.nargs:
            kw.update(nargs=o.nargs)
        else:
            hint = hint_at(o.path)
            kw["type"] = _argtype(hint)
        if o.append:
            kw["action"] = "append"
        group.add_argument(o.flag, **kw)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """``--preset``, ``--config`` and ``--set``: any setting, without an option of its own."""
    g = p.add_argument_group("configuration (resolved in this order, the options above last)")
    g.add_argument("--preset", choices=list(cfgmod.PRESETS), default=None,
                   help="start from a named configuration: " + "; ".join(
                       f"{k}: {v[0]}" for k, v in cfgmod.PRESETS.items()) + " (default: default)")
    g.add_argument("--config", default=None, metavar="FILE.toml",
                   help="TOML file of settings, tables by section: [train] epochs = 30, "
                        "[data.augment] gain_db = 3; may name a preset = \"plain\"")
    g.add_argument("--set", dest="set_", action="append", default=[], metavar="PATH=VALUE",
                   help="any setting by its dotted path, e.g. train.epochs=30 "
                        "data.augment.voicing=0.5 (repeatable; several per argument, separated "
                        "by spaces); `instrlab config` lists every path")


def add_dataset_options(p: argparse.ArgumentParser, base: ExperimentConfig) -> None:
    add_options(p.add_argument_group("dataset"), DATASET, base)
    a = p.add_argument_group(
        "audio augmentation, seeded per clip (robustness to unseen soundfonts; 0 turns an "
        "option off)")
    add_options(a, AUGMENT, base)


def add_train_options(p: argparse.ArgumentParser, base: ExperimentConfig) -> None:
    add_options(p.add_argument_group("model"), MODEL, base)
    add_options(p.add_argument_group("training"), TRAINING, base)
    add_options(p.add_argument_group(
        "training-time augmentation, drawn anew each epoch from --train-seed (0 turns a part "
        "off)"), SPEC_AUGMENT, base)


def add_heldout_options(p: argparse.ArgumentParser, base: ExperimentConfig) -> None:
    add_options(p.add_argument_group(
        "held-out figures, logged as the run's heldout_* metrics (clean clips, seed 1; 0 "
        "when training uses seed 1)"),
        HELDOUT, base)


# ---------------------------------------------------------------- reading the options


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The config paths the options set, in the order of the option tables."""
    out: dict[str, Any] = {}
    for o in (*DATASET, *AUGMENT, *MODEL, *TRAINING, *SPEC_AUGMENT, *HELDOUT):
        if not hasattr(args, DEST + o.path):
            continue
        value = getattr(args, DEST + o.path)
        if o.words:  # "-1 1" as one argument or two: config.coerce splits the words
            out[o.path] = " ".join(value)
        elif o.path == "model.params":
            for key, val in overrides.parse_assignments(value).items():
                out[f"model.params.{key}"] = val
        elif o.append and [str(v).lower() for v in value] == ["none"]:
            out[o.path] = ()  # a repeatable option given once as none: an empty list
        else:
            out[o.path] = value
    return out


def config_from_args(args: argparse.Namespace, adjust: Callable[[ExperimentConfig],
                     ExperimentConfig] | None = None) -> ExperimentConfig:
    """The configuration the options describe (see :func:`instrlab.config.resolve`); ``--set``
    comes before the options, so an option wins over the same path in ``--set``."""
    changes = {**overrides.parse_assignments(getattr(args, "set_", []))}
    for path, value in given(args).items():
        changes.pop(path, None)  # keep the options' order after --set's
        changes[path] = value
    return cfgmod.resolve(getattr(args, "preset", None), getattr(args, "config", None),
                          changes, adjust)


def config_paths(obj: Any = None, prefix: str = "") -> list[tuple[str, Any]]:
    """Every settable dotted path of ``obj`` (default: ``ExperimentConfig()``) and its value."""
    obj = ExperimentConfig() if obj is None else obj
    out: list[tuple[str, Any]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if is_dataclass(value):
            out.extend(config_paths(value, path + "."))
        else:
            out.append((path, value))
    return out
