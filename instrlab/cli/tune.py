"""The ``tune`` sub-command: an Optuna study over training, tracked in MLflow.

The work is in :mod:`instrlab.tune`; this module adds the parser and builds
:class:`instrlab.tune.options.TuneOptions`, whose defaults the help shows. Only
``instrlab.tune.options`` is imported here: ``--help`` does not import optuna.
"""

from __future__ import annotations

import argparse
from typing import Any

from instrlab.cli.experiment import add_experiment_options, check_experiment
from instrlab.cli.options import config_from_args, show
from instrlab.overrides import parse_bool
from instrlab.tune.options import (
    DEFAULT_SPACE,
    DEFAULT_STORAGE,
    KINDS,
    PRUNERS,
    SAMPLERS,
    TuneOptions,
)

SPACE_HELP = f"""\
search space: NAME=KIND:ARGS, repeatable (several specs may share one argument, separated by
spaces or ';'). KIND is {', '.join(KINDS)}: loguniform:LOW:HIGH, uniform:LOW:HIGH,
int:LOW:HIGH[:STEP], logint:LOW:HIGH or categorical:A,B,C; NAME=off drops a default. NAME is
a training setting (lr, batch_size, weight_decay, epochs, scheduler, ...), a keyword
parameter of the model's factory or, as categorical, a parameter of the features (n_mels:
one dataset per value, all built before the trials); write train.NAME, model.NAME or
data.NAME where a name is ambiguous. Default: {' '.join(DEFAULT_SPACE)}"""

# flag -> (TuneOptions field, argparse keywords, help)
STUDY_OPTIONS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("--n-trials", "n_trials", {"type": int}, "trials the study should hold, counted over "
     "every run and worker; interrupted trials do not count"),
    ("--timeout", "timeout", {"type": float, "metavar": "SECONDS"},
     "start no new trial after SECONDS (0: no limit)"),
    ("--study-name", "study_name", {}, "Optuna study name (none: derived from model, features, "
     "instruments, n_samples, seed and epochs)"),
    ("--storage", "storage", {}, f"journal file path (none: ./{DEFAULT_STORAGE}) or SQLAlchemy "
     "URL such as postgresql://user:pass@host/db for workers on several machines"),
    ("--search-space", "search_space", {"action": "append", "metavar": "NAME=KIND:ARGS"},
     "a tuned parameter (repeatable); see the description"),
    ("--sampler", "sampler", {"choices": list(SAMPLERS)},
     "each trial's sampler is seeded with sampler seed + trial number"),
    ("--sampler-seed", "sampler_seed", {"type": int}, "sampler seed"),
    ("--pruner", "pruner", {"choices": list(PRUNERS)},
     "per-epoch pruning on validation macro F1 (halving: successive halving)"),
    ("--pruner-startup-trials", "pruner_startup_trials", {"type": int},
     "median pruner: trials finished before any is pruned"),
    ("--pruner-warmup-epochs", "pruner_warmup_epochs", {"type": int},
     "epochs before a trial can be pruned"),
    ("--n-workers", "n_workers", {"type": int}, "worker processes on this machine, sharing the "
     "storage and the parent run; each gets cores/N torch threads unless --threads is given"),
    ("--retrain-best", "retrain_best", {"type": parse_bool, "nargs": "?", "const": True},
     "retrain the best trial and test it once at the end"),
    ("--top", "top", {"type": int}, "rows in the final table"),
)


def cmd_tune(args: argparse.Namespace) -> int:
    from instrlab.tracking.runs import print_ui_hint
    from instrlab.tune import run_tune

    cfg = config_from_args(args)
    check_experiment(cfg, register_as=args.register_model)
    study = {name: getattr(args, name) for _, name, _, _ in STUDY_OPTIONS if hasattr(args, name)}
    options = TuneOptions(**study, register_as=args.register_model, run_name=args.run_name,
                          progress=not args.no_progress, data_workers=args.workers)
    result = run_tune(options, cfg.data, cfg.model, cfg.train)
    print(f"tune run {result.parent_run_id}: study {result.study_name}")
    print_ui_hint(result.parent_run_id)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="tune training settings with an Optuna study, every trial an MLflow run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run or continue an Optuna study that maximizes the best epoch's "
                    "validation macro F1 (the test split is never used by a trial). One "
                    "parent MLflow run per invocation, one nested run per trial; at the end "
                    "the best trial is retrained and tested once. --n-trials is the size of "
                    "the study: run the same command again (or on several machines with one "
                    "database --storage) and it continues until the study holds that many "
                    "trials.\n\n" + SPACE_HELP)
    add_experiment_options(p)
    g = p.add_argument_group("study")
    defaults = TuneOptions()
    for flag, name, kw, text in STUDY_OPTIONS:
        value = getattr(defaults, name)
        g.add_argument(flag, dest=name, default=argparse.SUPPRESS,
                       help=f"{text} (default: {show(value)})", **kw)
    p.set_defaults(handler=cmd_tune, resolve=config_from_args)
