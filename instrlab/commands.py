"""Sub-commands that train, evaluate and predict; each adds its parser to the sub-parsers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instrlab.errors import InstrlabError

EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def command(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    EXTRA_COMMANDS.append(fn)
    return fn


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are parsed as JSON where they can be (numbers, lists)."""
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InstrlabError(f"--model-param {item!r} must look like KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def add_train_options(p: argparse.ArgumentParser) -> None:
    """Model and optimisation options shared by main, train and tune."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="mel_cnn",
                   help="registered model (default: mel_cnn; seed_cnn reproduces the seed "
                        "with --features seed_image)")
    g.add_argument("--model-param", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the model factory (repeatable)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=24,
                   help="training epochs (default: 24; the seed used 20, augmented data "
                        "needs the extra epochs)")
    g.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    g.add_argument("--scheduler", default="onecycle", choices=["none", "cosine", "onecycle"],
                   help="learning-rate schedule; onecycle peaks at --lr (default: onecycle; "
                        "the seed used none)")
    g.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation macro F1 "
                        "(default: 0 = off)")
    g.add_argument("--tune-thresholds", type=parse_bool, nargs="?", const=True, default=True,
                   help="pick each instrument's threshold on the validation split; false uses"
                        " 0.5 for all, as the seed (default: true)")
    g.add_argument("--min-labels", type=int, default=1, metavar="N",
                   help="every clip holds at least N instruments: a clip with fewer over "
                        "threshold is given its N most probable ones; 0 trusts the thresholds "
                        "alone, as the seed (default: 1, the protocol's minimum)")
    g.add_argument("--ema-decay", type=float, default=0.0, metavar="D",
                   help="validate and keep an exponential moving average of the weights, "
                        "updated every step with decay D (default: 0 = off)")
    g.add_argument("--train-seed", type=int, default=0,
                   help="seed of weight init and shuffling (default: 0)")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA when available, else CPU), cpu or cuda (default: auto)")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (default: 0 = all cores)")
    add_spec_augment_options(p)
    g = p.add_argument_group("tracking")
    g.add_argument("--run-name", default=None, help="MLflow run name (default: derived)")
    g.add_argument("--register-model", default=None, metavar="NAME",
                   help="also register the model in the MLflow model registry as NAME")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_spec_augment_options(p: argparse.ArgumentParser) -> None:
    """Training-time batch augmentation; on by default, 0 turns each part off."""
    from instrlab.spec_augment import DEFAULT

    g = p.add_argument_group(
        "training-time augmentation (drawn anew each epoch from --train-seed; 0 turns a part "
        "off; the defaults make models hold up on soundfonts they never heard)")
    g.add_argument("--spec-eq-db", type=float, default=DEFAULT.eq_db, metavar="DB",
                   help=f"random EQ over the mel bins within +-DB "
                        f"(default: {DEFAULT.eq_db:g})")
    g.add_argument("--spec-eq-knots", type=int, default=DEFAULT.eq_knots, metavar="N",
                   help="control points of that EQ curve over the mel bins; more points move "
                        f"neighbouring partials independently (default: {DEFAULT.eq_knots})")
    g.add_argument("--spec-freq-masks", type=int, default=DEFAULT.freq_masks, metavar="N",
                   help=f"SpecAugment: N frequency bands of up to {DEFAULT.freq_mask_bins} bins "
                        f"blanked per clip (default: {DEFAULT.freq_masks})")
    g.add_argument("--spec-time-masks", type=int, default=DEFAULT.time_masks, metavar="N",
                   help=f"SpecAugment: N time spans of up to {DEFAULT.time_mask_frames} frames "
                        f"blanked per clip (default: {DEFAULT.time_masks})")
    g.add_argument("--spec-shift-bins", type=int, default=DEFAULT.shift_bins, metavar="N",
                   help="move each clip's spectrum by up to +-N mel bins "
                        f"(default: {DEFAULT.shift_bins})")
    g.add_argument("--mixup-prob", type=float, default=DEFAULT.mixup_prob, metavar="P",
                   help="share of clips mixed with another clip of the batch, labels united "
                        f"(default: {DEFAULT.mixup_prob:g})")
    g.add_argument("--no-spec-augment", action="store_true",
                   help="turn every training-time augmentation off (as the seed)")


def spec_augment_from_args(args: argparse.Namespace) -> Any:
    import dataclasses

    from instrlab.spec_augment import DEFAULT, SpecAugmentConfig

    if args.no_spec_augment:
        return SpecAugmentConfig()
    return dataclasses.replace(DEFAULT, eq_db=args.spec_eq_db, eq_knots=args.spec_eq_knots,
                               freq_masks=args.spec_freq_masks,
                               time_masks=args.spec_time_masks, shift_bins=args.spec_shift_bins,
                               mixup_prob=args.mixup_prob)


def configs_from_args(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from instrlab.cli import dataset_config_from_args
    from instrlab.pipeline import ModelConfig
    from instrlab.training import TrainConfig

    data = dataset_config_from_args(args)
    model = ModelConfig(args.model, parse_key_values(args.model_param))
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, scheduler=args.scheduler,
                        early_stopping_patience=args.early_stopping, seed=args.train_seed,
                        device=args.device, num_threads=args.threads,
                        tune_thresholds=args.tune_thresholds, min_labels=args.min_labels,
                        ema_decay=args.ema_decay,
                        spec_augment=spec_augment_from_args(args))
    return data, model, train


def run_experiment(args: argparse.Namespace, track_generate: bool) -> int:
    """Dataset, then training and evaluation in one MLflow run."""
    import mlflow

    from instrlab.instruments import get_instrument_set
    from instrlab.pipeline import prepare_dataset, train_and_evaluate
    from instrlab.registry import models
    from instrlab.tracking import check_tracking, use_experiment

    data, model, train = configs_from_args(args)
    models.get(model.name)  # fail on an unknown model before any work
    train.check_classes(len(get_instrument_set(data.instruments)))
    check_tracking()
    use_experiment(data.instruments)
    name = args.run_name or (f"{model.name} {data.features} n={data.n_samples} "
                             f"ep={train.epochs} bs={train.batch_size} lr={train.lr:g}")
    with mlflow.start_run(run_name=name) as run:
        ds = prepare_dataset(data, workers=args.workers, progress=not args.no_progress,
                             nested_run=track_generate)
        metrics = train_and_evaluate(ds, model, train, register_as=args.register_model,
                                     progress=not args.no_progress)
        print(f"run {run.info.run_id}: test_macro_f1 {metrics['test_macro_f1']:.4f}")
    return 0


@command
def add_main(sub: Any) -> None:
    from instrlab.cli import add_dataset_options

    p = sub.add_parser("main", help="the whole pipeline: dataset -> train -> evaluate, in MLflow",
                       description="Build or reuse the dataset (tracked as a nested generate "
                                   "run, reused when one exists), train on 70 %, select on "
                                   "10 %, test once on 20 %, log everything to MLflow.")
    add_dataset_options(p)
    add_train_options(p)
    p.set_defaults(handler=lambda a: run_experiment(a, track_generate=True))


@command
def add_train(sub: Any) -> None:
    from instrlab.cli import add_dataset_options

    p = sub.add_parser("train", help="train and test a model on a dataset, in one MLflow run",
                       description="Like main, without a separate generate run.")
    add_dataset_options(p)
    add_train_options(p)
    p.set_defaults(handler=lambda a: run_experiment(a, track_generate=False))


def cmd_evaluate(args: argparse.Namespace) -> int:
    import dataclasses

    import mlflow

    from instrlab.cli import dataset_config_from_args
    from instrlab.pipeline import evaluate_logged_model, log_generalization_report
    from instrlab.predict import load_model
    from instrlab.tracking import check_tracking, use_experiment

    check_tracking()
    loaded = load_model(args.model_uri)  # once, for every source
    own_features = args.features is None  # read the clips the way the model was trained to
    if own_features:
        args.features = loaded.meta["features"]
    data = dataset_config_from_args(args)
    if own_features:
        data = dataclasses.replace(data,
                                   feature_params=dict(loaded.meta.get("feature_params") or {}))
    sources = args.eval_soundfont or [data.soundfont]
    use_experiment(data.instruments)

    def one(soundfont: str | None, nested: bool) -> dict[str, float]:
        cfg = dataclasses.replace(data, soundfont=soundfont)
        label = Path(soundfont).name if soundfont else "default soundfont"
        with mlflow.start_run(run_name=f"evaluate {args.model_uri[:12]} on {label}",
                              nested=nested):
            metrics = evaluate_logged_model(args.model_uri, cfg, workers=args.workers,
                                            progress=not args.no_progress, loaded=loaded)
        print(f"{label}: test_macro_f1 {metrics['test_macro_f1']:.4f}")
        return metrics

    if len(sources) == 1:
        one(sources[0], nested=False)
        return 0
    with mlflow.start_run(run_name=args.run_name or f"generalization {args.model_uri[:12]}"):
        results = {Path(sf).name if sf else "default": one(sf, nested=True) for sf in sources}
        log_generalization_report(args.model_uri, results)
    return 0


@command
def add_evaluate(sub: Any) -> None:
    from instrlab.cli import add_dataset_options

    p = sub.add_parser("evaluate", help="score a logged model on any dataset config",
                       description="Evaluate a logged model on a dataset (for example the same "
                                   "protocol rendered with another soundfont) in a new MLflow "
                                   "run tagged with the training run's id.")
    p.add_argument("model_uri", help="run id, runs:/ or models:/ URI, model directory or "
                                     "registered model name")
    add_dataset_options(p, evaluation=True)
    p.add_argument("--eval-soundfont", action="append", default=[], metavar="SOUNDFONT",
                   help="evaluate on the protocol rendered with each of these soundfonts "
                        "(repeatable): one run each, nested under a generalization report")
    p.add_argument("--run-name", default=None, help="MLflow run name")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_evaluate)


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from instrlab.metrics import binarize
    from instrlab.predict import load_model, predict_audio, read_audio, summarise

    if args.min_labels is not None and args.min_labels < 0:
        raise InstrlabError(f"--min-labels must be >= 0, got {args.min_labels}")
    loaded = load_model(args.model)
    meta = loaded.meta
    names = meta.get("instrument_labels") or meta["instrument_names"]
    thresholds = meta["thresholds"] if args.threshold is None else [args.threshold] * len(names)
    min_labels = loaded.min_labels if args.min_labels is None else args.min_labels
    failed = 0
    out = Console()
    for file in args.files:
        try:
            audio = read_audio(Path(file), meta["sample_rate"])
            probs = predict_audio(loaded, audio)
        except InstrlabError as exc:
            print(f"instrlab: error: {exc}", file=sys.stderr)  # one line, never wrapped
            failed += 1
            continue
        summary = summarise(probs)
        plays = binarize(summary[None], thresholds, min_labels)[0]
        table = Table(title=f"{file} ({len(audio) / meta['sample_rate']:.1f} s, "
                            f"{len(probs)} window{'s' if len(probs) != 1 else ''})")
        table.add_column("instrument")
        table.add_column("probability", justify="right")
        table.add_column("plays", justify="center")
        table.add_column("windows", justify="right")
        order = [i for i in np.argsort(-summary, kind="stable") if args.all or plays[i]]
        for i in order:
            hits = int((probs[:, i] >= thresholds[i]).sum())
            table.add_row(names[i], f"{summary[i]:.3f}", "yes" if plays[i] else "",
                          f"{hits}/{len(probs)}")
        if not len(order):
            table.add_row("(no instrument above threshold)", "", "", "")
        out.print(table)
    return 1 if failed else 0


@command
def add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="say which instruments play in audio files",
                       description="Load a logged model and print, for each WAV/FLAC/OGG file "
                                   "(any length, any sample rate), the instruments it hears "
                                   "with their probabilities. Long files are cut into clips "
                                   "and summarised by the highest probability.")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--model", required=True,
                   help="run id, runs:/ or models:/ URI, model directory or registered name")
    p.add_argument("--threshold", type=float, default=None,
                   help="probability threshold for all instruments (default: the model's)")
    p.add_argument("--min-labels", type=int, default=None, metavar="N",
                   help="name at least the N most probable instruments per file; 0 names only "
                        "those over threshold (default: the model's, 1 for models trained by "
                        "default)")
    p.add_argument("--all", action="store_true", help="list every instrument, not only hits")
    p.set_defaults(handler=cmd_predict)


from instrlab import tune_cli  # noqa: E402, F401  (registers the tune command)
