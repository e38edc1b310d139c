"""The trial loop of one process: the objective (one nested MLflow run per trial) and
trials until the study holds ``n_trials``. The parent process and every worker run it."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import optuna

from instrlab import pipeline
from instrlab.console import console
from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError, first_line
from instrlab.models.factory import ModelConfig
from instrlab.tracking.runs import TAG_STEP, start_run
from instrlab.training import TrainConfig
from instrlab.tune.keys import (
    ATTR_BEST_EPOCH,
    ATTR_FAIL,
    ATTR_HOST,
    ATTR_INTERRUPTED,
    ATTR_PID,
    ATTR_PRUNED_AT,
    ATTR_RUN,
    ATTR_WORKER,
    OBJECTIVE,
    TAG_HOST,
    TAG_PID,
    TAG_ROLE,
    TAG_STATE,
    TAG_STORAGE,
    TAG_STUDY,
    TAG_TRIAL,
)
from instrlab.tune.locks import dataset_lock
from instrlab.tune.space import SearchSpace
from instrlab.tune.storage import StorageInfo, trial_budget_lock
from instrlab.tune.trials import best_trial, counts, fail_dead_trials
from instrlab.tune.view import LiveView, fmt_param

MAX_FAILS_IN_A_ROW = 3


@dataclass
class TrialContext:
    """What the trials of one process share: the study, the fixed configs, the datasets."""

    study: optuna.Study
    space: SearchSpace
    data: DatasetConfig
    model: ModelConfig
    train: TrainConfig
    datasets: dict[str, Any]
    parent_run_id: str
    experiment_id: str
    storage: StorageInfo
    worker: int
    view: LiveView | None = None
    fails_in_a_row: int = 0


def data_key(cfg: DatasetConfig) -> str:
    """The key of a data variant in :attr:`TrialContext.datasets`."""
    return json.dumps(cfg.feature_params, sort_keys=True, default=str)


def prepare_datasets(space: SearchSpace, data: DatasetConfig, **kwargs: Any) -> dict[str, Any]:
    """Every dataset the trials can ask for, by :func:`data_key`; ``kwargs`` go to
    :func:`instrlab.pipeline.prepare_dataset`."""
    datasets = {}
    for variant in space.data_variants(data):
        with dataset_lock(variant):
            datasets[data_key(variant)] = pipeline.prepare_dataset(variant, **kwargs)
    return datasets


class TrialFailed(Exception):
    """A trial ended with an error (recorded in the trial); the study goes on."""


def make_objective(ctx: TrialContext) -> Callable[[optuna.Trial], float]:
    """The objective: train one trial's configs in a nested run, report every epoch."""

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(ATTR_HOST, socket.gethostname())
        trial.set_user_attr(ATTR_PID, os.getpid())
        trial.set_user_attr(ATTR_WORKER, ctx.worker)
        values = ctx.space.suggest(trial)
        data, model, train = ctx.space.apply(values, ctx.data, ctx.model, ctx.train)
        ds = ctx.datasets[data_key(data)]
        best, epoch_now = -math.inf, 0
        t0 = time.perf_counter()

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            nonlocal best, epoch_now
            check_interrupt()
            epoch_now = epoch
            best = max(best, metrics[OBJECTIVE])
            trial.report(best, epoch)
            if ctx.view is not None:
                ctx.view.refresh({trial.number: f"epoch {epoch}/{train.epochs}: {best:.4f}"})
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at {best:.4f}")

        with start_run(run_name=f"trial {trial.number}", nested=True,
                       parent_run_id=ctx.parent_run_id,
                       experiment_id=ctx.experiment_id) as run:

            def finish(state: str, status: str, **tags: str) -> None:
                # train_and_evaluate tags its runs step=train: a trial is step=trial
                mlflow.set_tags({TAG_STEP: "trial", TAG_STATE: state, **tags})
                mlflow.end_run(status)

            try:  # from the run's start: Ctrl-C anywhere in it ends it as KILLED
                trial.set_user_attr(ATTR_RUN, run.info.run_id)
                mlflow.set_tags({TAG_STUDY: ctx.study.study_name,
                                 TAG_STORAGE: ctx.storage.display, TAG_TRIAL: trial.number,
                                 TAG_STATE: "RUNNING", TAG_ROLE: "trial",
                                 "instrlab.worker": ctx.worker, TAG_HOST: socket.gethostname(),
                                 TAG_PID: os.getpid()})
                mlflow.log_params({f"tune.{k}": v for k, v in values.items()})
                result = pipeline.train_and_evaluate(ds, model, train, progress=False,
                                                     log_model=False, evaluate_test=False,
                                                     on_epoch=on_epoch, on_batch=check_interrupt)
            except optuna.TrialPruned:
                trial.set_user_attr(ATTR_PRUNED_AT, epoch_now)
                mlflow.log_metrics({"best_val_macro_f1": max(best, 0.0),
                                    "pruned_at_epoch": epoch_now,
                                    "seconds_trial": time.perf_counter() - t0})
                finish("PRUNED", "KILLED")
                _report(ctx, trial.number, "PRUNED", best, values, t0)
                raise
            except KeyboardInterrupt:
                trial.set_user_attr(ATTR_INTERRUPTED, True)
                finish("INTERRUPTED", "KILLED")
                raise
            except Exception as exc:
                reason = first_line(exc)
                trial.set_user_attr(ATTR_FAIL, reason)
                finish("FAIL", "FAILED", **{"instrlab.fail_reason": reason})
                _report(ctx, trial.number, f"FAIL ({reason})", best, values, t0)
                ctx.fails_in_a_row += 1
                raise TrialFailed(reason) from exc
            value = float(result["best_val_macro_f1"])
            trial.set_user_attr(ATTR_BEST_EPOCH, int(result["best_epoch"]))
            mlflow.log_metric("seconds_trial", time.perf_counter() - t0)
            finish("COMPLETE", "FINISHED")
        ctx.fails_in_a_row = 0
        _report(ctx, trial.number, "COMPLETE", value, values, t0)
        return value

    return objective


def _report(ctx: TrialContext, number: int, state: str, value: float, values: dict[str, Any],
            t0: float) -> None:
    """One line per finished trial (and a refreshed view)."""
    prev = best_trial(ctx.study.get_trials(deepcopy=False))
    best = max([v for v in (prev.value if prev else None,
                            value if state == "COMPLETE" else None) if v is not None],
               default=None)
    best_text = "" if best is None else f" (best {best:.4f})"
    params = " ".join(f"{k}={fmt_param(v)}" for k, v in values.items())
    val = f"{value:.4f}" if value > -math.inf else "-"
    who = f"worker {ctx.worker} " if ctx.worker else ""
    console.print(f"{who}trial {number} {state} {OBJECTIVE} {val}{best_text} {params} "
                  f"[{time.perf_counter() - t0:.0f} s]", highlight=False, soft_wrap=True)
    if ctx.view is not None:
        ctx.view.refresh({})


class QuietInterrupts(logging.Filter):
    """Drops Optuna's report of a trial that Ctrl-C or SIGTERM cut short (a traceback and a
    second line): the trial is marked interrupted and the command line says so in one line.
    Reports of trials that failed with an error pass."""

    def __init__(self) -> None:
        super().__init__()
        self._next: str | None = None  # the start of the second line to drop

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self._next = text.split(" failed", 1)[0] + " failed with value"
            return False
        if self._next is not None and text.startswith(self._next):
            self._next = None
            return False
        return True


QUIET_INTERRUPTS = QuietInterrupts()
OPTIMIZE_LOGGER = "optuna.study._optimize"  # where Optuna logs the trials that failed


def run_trials(ctx: TrialContext, n_trials: int, deadline: float | None) -> int:
    """Trials until the study holds ``n_trials`` counted trials (or the deadline).

    Counting and starting a trial happen under :func:`trial_budget_lock`, released as soon
    as the new trial is in the storage, so workers never start more than ``n_trials``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials are reported by _report
    logging.getLogger(OPTIMIZE_LOGGER).addFilter(QUIET_INTERRUPTS)
    objective = make_objective(ctx)
    budget = trial_budget_lock(ctx.storage, ctx.study.study_name)

    def started(trial: optuna.Trial) -> float:
        budget.release()  # the trial is RUNNING in the storage: the others count it now
        return objective(trial)

    ran = 0
    while True:
        check_interrupt()
        budget.acquire()
        try:
            fail_dead_trials(ctx.study)
            if counts(ctx.study.get_trials(deepcopy=False))["counted"] >= n_trials:
                break
            if deadline is not None and time.time() >= deadline:
                console.print("tune: timeout reached; no new trials")
                break
            ctx.study.optimize(started, n_trials=1, catch=(TrialFailed,),
                               gc_after_trial=False, show_progress_bar=False)
        finally:
            budget.release()
        ran += 1
        if ctx.fails_in_a_row >= MAX_FAILS_IN_A_ROW:
            last = ctx.study.get_trials(deepcopy=False)[-1].user_attrs.get(ATTR_FAIL, "")
            raise InstrlabError(f"{MAX_FAILS_IN_A_ROW} trials in a row failed (last: {last}); "
                                "fix the search space or the settings")
    return ran


class _Flag:
    """Whether a SIGINT or SIGTERM came under :func:`signals_as_interrupt`. A plain attribute,
    not a ``threading.Event``: a handler runs between two bytecodes of the main thread, also
    inside another handler, and ``Event.set`` holds a lock that the handler of a second
    signal landing there waits on for ever (a worker hung so when its tune was SIGKILLed)."""

    value = False


_interrupted = _Flag()


def check_interrupt() -> None:
    """Raise the KeyboardInterrupt of a signal that :func:`signals_as_interrupt` deferred;
    called at safe points: after every batch and epoch, between trials, while waiting."""
    if _interrupted.value:
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM end a trial alike: marked interrupted, its run KILLED.

    The first signal only sets a flag that :func:`check_interrupt` raises at the next safe
    point. Raised where the signal lands, a KeyboardInterrupt can cut an MLflow or Optuna
    storage write in half (a SQLAlchemy transaction, a journal lock) and leave a run or a
    trial that never ends. A second Ctrl-C raises at once, wherever it lands; Python drops
    one raised in a finalizer, which is kept quiet here (the flag is already set). SIGTERM
    never does: a worker's parent-death signal comes once per thread of the dying parent
    that it is handed to (prctl(2)), so one SIGKILL of ``instrlab tune`` sends it several.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _interrupted.value and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _interrupted.value = True

    def unraisable(info: Any) -> None:
        if not (_interrupted.value and isinstance(info.exc_value, KeyboardInterrupt)):
            old_hook(info)

    _interrupted.value = False
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
        check_interrupt()  # a signal after the last safe point still interrupts
    finally:
        sys.unraisablehook = old_hook
        for sig, previous in old.items():
            signal.signal(sig, previous)
        _interrupted.value = False
