"""The ``tune`` sub-command: an Optuna study over training, tracked in MLflow.

The work is in :mod:`instrlab.tune`; this module only adds the parser and turns the
options into :class:`instrlab.tune.TuneOptions`.
"""

from __future__ import annotations

import argparse
from typing import Any

from instrlab.commands import add_train_options, command, configs_from_args, parse_bool

# the same as in instrlab.tune, which is not imported here: --help stays fast
DEFAULT_STORAGE = "optuna-journal.log"
PRUNERS = ("none", "median", "halving")
SAMPLERS = ("tpe", "random")

SPACE_HELP = """\
search space: NAME=KIND:ARGS, repeatable (several specs may share one argument, separated by
spaces or ';'). KIND is loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH[:STEP],
logint:LOW:HIGH or categorical:A,B,C; NAME=off drops a default. NAME is a training setting
(lr, batch_size, weight_decay, epochs, scheduler, ...), a parameter of the model (mel_cnn:
width, n_blocks, kernel_size, stem_stride, dropout) or, as categorical, a parameter of the
features (n_mels: one dataset per value, all built before the trials); write train.NAME,
model.NAME or data.NAME where a name is ambiguous. Default:
lr=loguniform:1e-4:1e-2 batch_size=categorical:16,32,64,128,256"""


def cmd_tune(args: argparse.Namespace) -> int:
    from instrlab.tune import TuneOptions, run_tune

    data, model, train = configs_from_args(args)
    options = TuneOptions(
        study_name=args.study_name or None, storage=args.storage or None,
        n_trials=args.n_trials, timeout=args.timeout, sampler=args.sampler,
        sampler_seed=args.sampler_seed, pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_epochs=args.pruner_warmup_epochs, n_workers=args.n_workers,
        retrain_best=args.retrain_best, register_as=args.register_model,
        run_name=args.run_name, progress=not args.no_progress, top=args.top,
        data_workers=args.workers, search_space=list(args.search_space),
    )
    result = run_tune(options, data, model, train)
    print(f"tune run {result.parent_run_id}: study {result.study_name}")
    return 0


@command
def add_tune(sub: Any) -> None:
    from instrlab.cli import add_dataset_options

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
    add_dataset_options(p)
    add_train_options(p)
    g = p.add_argument_group("study")
    g.add_argument("--n-trials", type=int, default=20,
                   help="trials the study should hold, counted over every run and worker; "
                        "interrupted trials do not count (default: 20)")
    g.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS",
                   help="start no new trial after SECONDS (default: 0 = no limit)")
    g.add_argument("--study-name", default=None,
                   help="Optuna study name (default: derived from model, features, "
                        "instruments, n_samples, seed and epochs)")
    g.add_argument("--storage", default=None,
                   help=f"journal file path (default: ./{DEFAULT_STORAGE}) or SQLAlchemy URL "
                        "such as postgresql://user:pass@host/db for workers on several "
                        "machines")
    g.add_argument("--search-space", action="append", default=[], metavar="NAME=KIND:ARGS",
                   help="a tuned parameter (repeatable); see the description")
    g.add_argument("--sampler", default="tpe", choices=SAMPLERS,
                   help="tpe (default) or random; each trial's sampler is seeded with "
                        "sampler seed + trial number")
    g.add_argument("--sampler-seed", type=int, default=0, help="sampler seed (default: 0)")
    g.add_argument("--pruner", default="median", choices=PRUNERS,
                   help="per-epoch pruning on validation macro F1: median (default), halving "
                        "(successive halving) or none")
    g.add_argument("--pruner-startup-trials", type=int, default=5,
                   help="median pruner: trials finished before any is pruned (default: 5)")
    g.add_argument("--pruner-warmup-epochs", type=int, default=1,
                   help="epochs before a trial can be pruned (default: 1)")
    g.add_argument("--n-workers", type=int, default=1,
                   help="worker processes on this machine, sharing the storage and the "
                        "parent run (default: 1); each gets cores/N torch threads unless "
                        "--threads is given")
    g.add_argument("--retrain-best", type=parse_bool, nargs="?", const=True, default=True,
                   help="retrain the best trial and test it once at the end (default: true)")
    g.add_argument("--top", type=int, default=10, help="rows in the final table (default: 10)")
    p.set_defaults(handler=cmd_tune)
