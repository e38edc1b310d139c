"""Optuna studies over instrlab's training, every trial a nested MLflow run.

One ``instrlab tune`` invocation is one parent MLflow run. Each trial opens its own
``mlflow.start_run(nested=True)`` under it (params, per-epoch curves, final metrics, its
state as a tag); the objective is the best epoch's validation macro F1 and the test split
is never touched by a trial. At the end the parent logs the best params and value, the
trials table and Optuna's plots, and the best trial is retrained once in a nested
``best`` run that is evaluated on the test split and logs the model.

Storage: a journal file (``optuna-journal.log`` in the working directory by default) or
any SQLAlchemy URL (PostgreSQL, MySQL) for workers on several machines. ``n_trials`` is
the size of the *study*, not of one invocation: a worker starts a new trial only while
the study holds fewer than ``n_trials`` trials that count (complete, pruned, failed with
an error, or running). Trials cut short by an interruption (Ctrl-C, a killed worker) do
not count, so running the same command again continues the study where it stopped.
Parallelism is worker processes (``n_workers`` or the same command started several
times), never threads.

Modules, each depending only on those above it: :mod:`.options` (settings and defaults,
no optuna), :mod:`.keys` (stored names), :mod:`.targets` and :mod:`.space` (the search
space), :mod:`.storage`, :mod:`.sampling`, :mod:`.trials`, :mod:`.view`, :mod:`.locks`,
:mod:`.loop` (the trials of one process), :mod:`.workers`, :mod:`.study` (:func:`run_tune`).
The names below load their module on first use (PEP 562), so importing this package or
:mod:`.options` imports no optuna, mlflow or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from instrlab.tune.keys import (
    ATTR_BEST_EPOCH,
    ATTR_FAIL,
    ATTR_HOST,
    ATTR_INTERRUPTED,
    ATTR_OBJECTIVE,
    ATTR_PID,
    ATTR_PRUNED_AT,
    ATTR_RUN,
    ATTR_SETUP,
    ATTR_SPACE,
    ATTR_WORKER,
    OBJECTIVE,
    TAG_ROLE,
    TAG_STATE,
    TAG_STORAGE,
    TAG_STUDY,
    TAG_TRIAL,
)
from instrlab.tune.options import (
    DEFAULT_SPACE,
    DEFAULT_STORAGE,
    KINDS,
    PRUNERS,
    SAMPLERS,
    TuneOptions,
)

if TYPE_CHECKING:
    from instrlab.tune.sampling import TrialSeededSampler, make_pruner, make_sampler
    from instrlab.tune.space import SearchSpace, TunedParam
    from instrlab.tune.storage import (
        StorageInfo,
        default_study_name,
        open_storage,
        open_study,
        study_setup,
    )
    from instrlab.tune.study import TuneResult, log_study_plots, run_tune
    from instrlab.tune.targets import TARGETS
    from instrlab.tune.trials import counts, fail_dead_trials
    from instrlab.tune.view import LiveView, top_trials_table
    from instrlab.tune.workers import worker_main

_LAZY = {
    "TARGETS": "targets",
    "SearchSpace": "space", "TunedParam": "space",
    "StorageInfo": "storage", "open_storage": "storage", "open_study": "storage",
    "study_setup": "storage", "default_study_name": "storage",
    "TrialSeededSampler": "sampling", "make_sampler": "sampling", "make_pruner": "sampling",
    "counts": "trials", "fail_dead_trials": "trials",
    "LiveView": "view", "top_trials_table": "view",
    "TuneResult": "study", "run_tune": "study", "log_study_plots": "study",
    "worker_main": "workers",
}

__all__ = [
    "ATTR_BEST_EPOCH", "ATTR_FAIL", "ATTR_HOST", "ATTR_INTERRUPTED", "ATTR_OBJECTIVE",
    "ATTR_PID", "ATTR_PRUNED_AT", "ATTR_RUN", "ATTR_SETUP", "ATTR_SPACE", "ATTR_WORKER",
    "DEFAULT_SPACE", "DEFAULT_STORAGE", "KINDS", "OBJECTIVE", "PRUNERS", "SAMPLERS",
    "TAG_ROLE", "TAG_STATE", "TAG_STORAGE", "TAG_STUDY", "TAG_TRIAL", "TuneOptions",
    # loaded on first use:
    "TARGETS", "SearchSpace", "TunedParam", "StorageInfo", "open_storage", "open_study",
    "study_setup", "default_study_name", "TrialSeededSampler", "make_sampler", "make_pruner",
    "counts", "fail_dead_trials", "LiveView", "top_trials_table", "TuneResult", "run_tune",
    "log_study_plots", "worker_main",
]


def __getattr__(name: str) -> Any:  # PEP 562: optuna and mlflow load on first use
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
