"""Sub-commands that train and score models in MLflow: ``main``, ``train``, ``evaluate``."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from instrlab.cli.data import add_workers_option
from instrlab.cli.options import (
    add_config_options,
    add_dataset_options,
    add_heldout_options,
    add_train_options,
    config_from_args,
)
from instrlab.cli.predict import MODEL_HELP, add_trust_option, load_model_arg
from instrlab.config import BLEND_NEEDS_TWO, ExperimentConfig, evaluation_data, on_soundfont


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tracking")
    g.add_argument("--run-name", default=None, help="MLflow run name (default: derived)")
    g.add_argument("--register-model", default=None, metavar="NAME",
                   help="also register the model in the MLflow model registry as NAME")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_system_metrics_option(g)


class _NoSystemMetrics(argparse.Action):
    """Sets INSTRLAB_SYSTEM_METRICS=0 (instrlab.tracking.runs.SYSTEM_METRICS_ENV) when
    parsed: every run of this process, and of the tune workers it starts, reads it."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        os.environ["INSTRLAB_SYSTEM_METRICS"] = "0"
        setattr(namespace, self.dest, True)


def add_system_metrics_option(p: Any) -> None:
    p.add_argument("--no-system-metrics", action=_NoSystemMetrics,
                   help="do not sample CPU, memory, disk, network and GPU use into the "
                        "runs' system/* metrics (every 10 s; or INSTRLAB_SYSTEM_METRICS=0)")


def add_experiment_options(p: argparse.ArgumentParser) -> None:
    """Everything ``main``, ``train`` and ``tune`` share."""
    base = ExperimentConfig()
    add_dataset_options(p, base)
    add_train_options(p, base)
    add_config_options(p)
    add_workers_option(p)
    add_tracking_options(p)


def check_experiment(cfg: ExperimentConfig, register_as: str | None = None,
                     held_out: bool = False) -> None:
    """One-line errors for what no run of ``cfg`` can do, before any work.

    The model is built once on the features' shape (known without rendering), and
    ``register_as`` is checked with MLflow's own rule for registered-model names;
    ``held_out``: the held-out figures of ``cfg.eval`` are checked too.
    """
    from instrlab.dataset.config import allowed_soundfonts, soundfont_weights
    from instrlab.errors import InstrlabError, first_line
    from instrlab.features import get_extractor
    from instrlab.instruments import get_instrument_set
    from instrlab.models.factory import build_model
    from instrlab.registry import models
    from instrlab.scores import check_trainable

    models.get(cfg.model.name)
    iset = get_instrument_set(cfg.data.instruments)
    n_classes = len(iset)
    cfg.train.check_classes(n_classes)
    cfg.data.score.validate(n_classes)
    check_trainable(cfg.data.score)
    soundfont_weights(cfg.data)  # each weight and exclusion names a soundfont of the data
    allowed_soundfonts(cfg.data, iset)
    if cfg.data.augment.family_blend and not cfg.data.extra_soundfonts:
        raise InstrlabError(BLEND_NEEDS_TWO)
    if held_out:
        cfg.eval.check(cfg.data, n_classes)
    if register_as is not None:
        from mlflow.exceptions import MlflowException

        try:  # MLflow's own rule, checked before any work; private, so it may move
            from mlflow.utils.validation import _validate_model_name
        except ImportError:  # then registering after training names the problem
            pass
        else:
            try:
                _validate_model_name(register_as)
            except MlflowException as exc:
                raise InstrlabError(f"--register-model {register_as!r}: "
                                    f"{first_line(exc).rstrip('.')}; pick another name") from None
    data = cfg.data
    try:
        shape = get_extractor(data.features, sample_rate=data.sample_rate,
                              clip_seconds=data.score.clip_seconds, **data.feature_params).shape
    except TypeError as exc:
        raise InstrlabError(f"features {data.features!r} rejected data.feature_params "
                            f"({first_line(exc)}); fix them") from exc
    build_model(cfg.model, tuple(shape), n_classes)


def run_experiment(args: argparse.Namespace, track_generate: bool) -> int:
    """Dataset, then training, evaluation and held-out figures in one MLflow run."""
    cfg = config_from_args(args)
    data, model, train = cfg.data, cfg.model, cfg.train
    check_experiment(cfg, register_as=args.register_model, held_out=True)  # fast: no mlflow
    import mlflow

    from instrlab.heldout import evaluate_held_out, summary
    from instrlab.params import flat_params
    from instrlab.pipeline import prepare_dataset, train_and_evaluate
    from instrlab.tracking.runs import check_tracking, print_ui_hint, start_run, use_experiment

    check_tracking()
    use_experiment(data.instruments)
    name = args.run_name or (f"{model.name} {data.features} n={data.n_samples} "
                             f"ep={train.epochs} bs={train.batch_size} lr={train.lr:g}")
    with start_run(run_name=name) as run:
        mlflow.log_params(flat_params("eval", dataclasses.asdict(cfg.eval)))
        ds = prepare_dataset(data, workers=args.workers, progress=not args.no_progress,
                             nested_run=track_generate)
        metrics = train_and_evaluate(ds, model, train, register_as=args.register_model,
                                     progress=not args.no_progress)
        held_out: dict[str, float] = {}
        if cfg.eval.active:
            held_out = evaluate_held_out(f"runs:/{run.info.run_id}/model", data, cfg.eval,
                                         workers=args.workers, progress=not args.no_progress)
        print(f"run {run.info.run_id}: test_macro_f1 {metrics['test_macro_f1']:.4f}")
        if held_out:
            print(summary(held_out))
    print_ui_hint(run.info.run_id, run.info.experiment_id)
    return 0


def evaluation_config(args: argparse.Namespace) -> ExperimentConfig:
    """Evaluation data (clean, seed 1) under the user's settings."""
    return config_from_args(args, adjust=lambda c: dataclasses.replace(
        c, data=evaluation_data(c.data)))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from instrlab.cli.options import DEST
    from instrlab.pipeline import evaluate_logged_model, log_generalization_report
    from instrlab.tracking.runs import check_tracking, start_run, use_experiment

    check_tracking()
    loaded = load_model_arg(args.model_uri, args.trust_pickled_model)  # once, for every source
    data = evaluation_config(args).data
    if not hasattr(args, DEST + "data.features"):  # read clips as the model was trained to
        data = dataclasses.replace(data, features=loaded.meta["features"],
                                   feature_params=dict(loaded.meta.get("feature_params") or {}))
    sources = args.eval_soundfont or [data.soundfont]
    use_experiment(data.instruments)

    def one(soundfont: str | None, nested: bool) -> dict[str, float]:
        cfg = on_soundfont(data, soundfont) if args.eval_soundfont else data
        label = Path(soundfont).name if soundfont else "default soundfont"
        with start_run(run_name=f"evaluate {args.model_uri[:12]} on {label}", nested=nested):
            metrics = evaluate_logged_model(args.model_uri, cfg, workers=args.workers,
                                            progress=not args.no_progress, loaded=loaded)
        print(f"{label}: test_macro_f1 {metrics['test_macro_f1']:.4f}")
        return metrics

    if len(sources) == 1:
        one(sources[0], nested=False)
        return 0
    with start_run(run_name=args.run_name or f"generalization {args.model_uri[:12]}"):
        results = {Path(sf).name if sf else "default": one(sf, nested=True) for sf in sources}
        log_generalization_report(args.model_uri, results)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("main", help="the whole pipeline: dataset -> train -> evaluate, in MLflow",
                       description="Build or reuse the dataset (tracked as a nested generate "
                                   "run, reused when one exists), train on 70 %, select on "
                                   "10 %, test once on 20 %, score the held-out figures, "
                                   "log everything to MLflow.")
    add_experiment_options(p)
    add_heldout_options(p, ExperimentConfig())
    p.set_defaults(handler=lambda a: run_experiment(a, track_generate=True),
                   resolve=config_from_args)

    p = sub.add_parser("train", help="train and test a model on a dataset, in one MLflow run",
                       description="Like main, without a separate generate run.")
    add_experiment_options(p)
    add_heldout_options(p, ExperimentConfig())
    p.set_defaults(handler=lambda a: run_experiment(a, track_generate=False),
                   resolve=config_from_args)

    base = ExperimentConfig()
    base = dataclasses.replace(base, data=evaluation_data(base.data))
    p = sub.add_parser("evaluate", help="score a logged model on any dataset config",
                       description="Evaluate a logged model on a dataset (for example the same "
                                   "protocol rendered with another soundfont) in a new MLflow "
                                   "run tagged with the training run's id. Evaluation clips "
                                   "are clean and use seed 1 unless told otherwise, and are "
                                   "read with the model's own features by default.")
    p.add_argument("model_uri", help=MODEL_HELP)
    add_dataset_options(p, base)
    p._option_string_actions["--features"].help = (
        "feature extractor (default: the model's, with its parameters)")
    add_config_options(p)
    add_workers_option(p)
    p.add_argument("--eval-soundfont", action="append", default=[], metavar="SOUNDFONT",
                   help="evaluate on the protocol rendered with each of these soundfonts "
                        "(repeatable): one run each, nested under a generalization report")
    p.add_argument("--run-name", default=None, help="MLflow run name")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_system_metrics_option(p)
    add_trust_option(p)
    p.set_defaults(handler=cmd_evaluate, resolve=evaluation_config)
