"""One ``instrlab tune`` invocation: a study run (or continued) under one parent MLflow run.

:func:`run_tune` opens the storage and the study, starts the workers, runs trials
(:mod:`instrlab.tune.loop`), then logs the study's outcome and plots to the parent run and
retrains the best trial once in a nested ``best`` run that is evaluated on the test split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
from optuna.trial import TrialState
from rich.console import Console

from instrlab import pipeline
from instrlab.console import console
from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError, first_line
from instrlab.models.factory import ModelConfig
from instrlab.params import flat_params
from instrlab.registry import models
from instrlab.tracking.runs import (
    TAG_STEP,
    check_tracking,
    log_figure,
    start_run,
    use_experiment,
)
from instrlab.training import TrainConfig
from instrlab.tune.keys import (
    ATTR_RUN,
    OBJECTIVE,
    TAG_HOST,
    TAG_INTERRUPTED,
    TAG_PID,
    TAG_ROLE,
    TAG_STORAGE,
    TAG_STUDY,
    TAG_TRIAL,
)
from instrlab.tune.locks import tracking_schema_lock
from instrlab.tune.loop import (
    TrialContext,
    data_key,
    prepare_datasets,
    run_trials,
    signals_as_interrupt,
)
from instrlab.tune.options import TuneOptions
from instrlab.tune.sampling import make_pruner, make_sampler
from instrlab.tune.space import SearchSpace
from instrlab.tune.storage import default_study_name, open_storage, open_study, study_setup
from instrlab.tune.trials import best_trial, counts, end_dead_parent_runs
from instrlab.tune.view import LiveView, fmt_param, top_trials_table
from instrlab.tune.workers import (
    spawn_workers,
    stop_workers,
    wait_running,
    wait_workers,
    worker_exits,
)


@dataclass
class TuneResult:
    """What one invocation did: the study's best trial, its counts, the runs it logged."""

    study_name: str
    parent_run_id: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    counts: dict[str, int]
    ran: int
    seconds: float
    best_run_id: str | None = None
    test_macro_f1: float | None = None


def run_tune(options: TuneOptions, data: DatasetConfig, model: ModelConfig, train: TrainConfig,
             *, pruner: optuna.pruners.BasePruner | None = None) -> TuneResult:
    """Run (or continue) a study and track it in one parent MLflow run; see the module doc.

    ``pruner`` replaces the one ``options.pruner`` names (tests use a pruner of their own).
    """
    models.get(model.name)  # unknown model: fail before any work
    space = SearchSpace.parse(options.search_space, data, model, train)
    pruner = pruner or make_pruner(options.pruner, options.pruner_startup_trials,
                                   options.pruner_warmup_epochs)
    sampler = make_sampler(options.sampler, options.sampler_seed)
    storage = open_storage(options.storage)
    name = options.study_name or default_study_name(data, model, train)
    if options.n_workers > 1 and train.num_threads == 0:
        train = dataclasses.replace(train, num_threads=max(1, (os.cpu_count() or 1)
                                                           // options.n_workers))
    setup = study_setup(space, data, model, train)
    study = open_study(storage, name, space, setup, sampler, pruner)
    with tracking_schema_lock():
        check_tracking()  # creates MLflow's schema once, before any worker starts
    use_experiment(data.instruments)
    end_dead_parent_runs(name, storage.display)
    t_start = time.perf_counter()
    run_name = options.run_name or f"tune {name}"
    with start_run(run_name=run_name) as parent:
        parent_id, exp_id = parent.info.run_id, parent.info.experiment_id
        mlflow.set_tags({TAG_STEP: "tune", TAG_ROLE: "tune", TAG_STUDY: name,
                         TAG_STORAGE: storage.display, TAG_HOST: socket.gethostname(),
                         TAG_PID: os.getpid(), "instrlab.model": model.name,
                         "instrlab.features": data.features,
                         "instrlab.instruments": data.instruments})
        mlflow.log_params({
            "tune.study": name, "tune.storage": storage.display,
            "tune.n_trials": options.n_trials, "tune.timeout": options.timeout,
            "tune.sampler": options.sampler, "tune.sampler_seed": options.sampler_seed,
            "tune.pruner": type(pruner).__name__, "tune.n_workers": options.n_workers,
            "tune.search_space": space.text(), "tune.objective": OBJECTIVE,
            **data.flat_params(), **flat_params("model", dataclasses.asdict(model)),
            **flat_params("train", {k: v for k, v in train.to_dict().items()
                             if k not in {p.name for p in space.by_target("train")}}),
        })
        mlflow.log_dict({"search_space": space.to_json(), "setup": setup},
                        "tune/search_space.json")
        datasets = prepare_datasets(space, data, workers=options.data_workers,
                                    progress=options.progress, nested_run=True)
        before = counts(study.get_trials(deepcopy=False))
        console.print(f"tune: study {name} in {storage.display}: {before['counted']} of "
                      f"{options.n_trials} trials there; search space {space.text()}",
                      highlight=False, soft_wrap=True)
        ctx = TrialContext(study, space, data, model, train, datasets, parent_id, exp_id,
                           storage, worker=0)
        deadline = time.time() + options.timeout if options.timeout else None
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with signals_as_interrupt(), LiveView(study, options.n_trials, space,
                                                  options.progress) as view:
                procs += spawn_workers(options, data, model, train, parent_id, exp_id, name)
                ctx.view = view
                ran = run_trials(ctx, options.n_trials, deadline)
                wait_workers(procs, view)
                wait_running(study, view)
                if deadline is None or time.time() < deadline:  # what dead workers left
                    ran += run_trials(ctx, options.n_trials, deadline)
        except KeyboardInterrupt:
            stop_workers(procs)
            mlflow.set_tag(TAG_INTERRUPTED, "true")
            mlflow.end_run("KILLED")
            raise
        finally:
            stop_workers(procs)
        ctx.view = None
        failed = worker_exits(procs, study, options.n_trials)
        if failed:
            raise InstrlabError(failed)
        seconds = time.perf_counter() - t_start
        result = _summarise(study, space, options, seconds, ran)
        result.parent_run_id = parent_id
        if options.retrain_best and result.best_trial is not None:
            _retrain_best(result, study, space, data, model, train, datasets, options)
    return result


def _summarise(study: optuna.Study, space: SearchSpace, options: TuneOptions, seconds: float,
               ran: int) -> TuneResult:
    """Log the study's outcome to the active (parent) run and print the top trials."""
    trials = study.get_trials(deepcopy=False)
    c = counts(trials)
    best = best_trial(trials)
    mlflow.log_metrics({"n_trials_total": len(trials), "n_trials_complete": c["complete"],
                        "n_trials_pruned": c["pruned"], "n_trials_failed": c["failed"],
                        "n_trials_interrupted": c["interrupted"], "n_trials_this_run": ran,
                        "seconds_tune": seconds})
    with contextlib.suppress(Exception):
        mlflow.log_text(study.trials_dataframe().to_csv(index=False), "tune/trials.csv")
    log_study_plots(study, space)
    out = Console()
    if not out.is_terminal:  # logs and pipes: no truncated columns
        out = Console(width=max(out.width, 140))
    out.print(top_trials_table(study, space.names, options.top))
    if best is None:
        mlflow.set_tag("instrlab.best_trial", "none")
        console.print(f"tune: no trial of study {study.study_name} completed yet")
        return TuneResult(study.study_name, "", None, {}, None, c, ran, seconds)
    mlflow.log_metric("best_val_macro_f1", best.value)
    mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
    mlflow.set_tags({"instrlab.best_trial": best.number,
                     "instrlab.best_trial_run_id": best.user_attrs.get(ATTR_RUN, "")})
    mlflow.log_dict({"trial": best.number, "value": best.value, "params": best.params},
                    "tune/best_params.json")
    print(f"study {study.study_name}: best {OBJECTIVE} {best.value:.4f} (trial {best.number}: "
          f"{' '.join(f'{k}={fmt_param(v)}' for k, v in best.params.items())}); "
          f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed; "
          f"{seconds:.0f} s")
    return TuneResult(study.study_name, "", best.value, dict(best.params), best.number, c, ran,
                      seconds)


def log_study_plots(study: optuna.Study, space: SearchSpace) -> list[str]:
    """Optuna's matplotlib plots as artifacts of the active run; returns the paths logged."""
    # here, not at the top: the Agg backend is chosen only where plots are made
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    logged: list[str] = []

    def save(make: Callable[[], Any], path: str) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make()
            fig = np.ravel(axes)[0].figure
            fig.set_size_inches(max(fig.get_size_inches()[0], 8), fig.get_size_inches()[1])
            log_figure(fig, path)
            logged.append(path)
        except Exception as exc:  # a missing plot never fails a study
            console.print(f"tune: no {path} ({first_line(exc)})")

    if not done:
        return logged
    save(lambda: ovm.plot_optimization_history(study, target_name=OBJECTIVE),
         "plots/optimization_history.png")
    save(lambda: ovm.plot_intermediate_values(study), "plots/intermediate_values.png")
    varied = [n for n in space.names if len({repr(t.params.get(n)) for t in done}) > 1]
    if len(done) >= 2 and varied:
        save(lambda: ovm.plot_param_importances(study, params=varied),
             "plots/param_importances.png")
    pair = [n for n in ("lr", "batch_size") if n in varied]
    if len(pair) == 2:
        save(lambda: ovm.plot_contour(study, params=pair, target_name=OBJECTIVE),
             "plots/contour_lr_batch_size.png")
    save(lambda: ovm.plot_slice(study, params=pair or varied or space.names,
                                target_name=OBJECTIVE), "plots/slice.png")
    return logged


def _retrain_best(result: TuneResult, study: optuna.Study, space: SearchSpace,
                  data: DatasetConfig, model: ModelConfig, train: TrainConfig,
                  datasets: dict[str, Any], options: TuneOptions) -> None:
    """Train the best trial's configs again in a nested run; evaluate it once on test."""
    best = next(t for t in study.get_trials(deepcopy=False) if t.number == result.best_trial)
    data_b, model_b, train_b = space.apply(best.params, data, model, train)
    ds = datasets[data_key(data_b)]
    console.print(f"tune: retraining trial {best.number} ({best.value:.4f}) and testing it once")
    with start_run(run_name=f"best (trial {best.number})", nested=True) as run:
        mlflow.set_tags({TAG_ROLE: "best", TAG_STUDY: study.study_name,
                         TAG_TRIAL: best.number,
                         "instrlab.trial_run_id": best.user_attrs.get(ATTR_RUN, "")})
        mlflow.log_params({f"tune.{k}": v for k, v in best.params.items()})
        metrics = pipeline.train_and_evaluate(ds, model_b, train_b,
                                              register_as=options.register_as,
                                              progress=options.progress, log_model=True)
    result.best_run_id = run.info.run_id
    result.test_macro_f1 = float(metrics["test_macro_f1"])
    mlflow.log_metrics({"best_test_macro_f1": result.test_macro_f1,
                        "best_retrained_val_macro_f1": float(metrics["best_val_macro_f1"])})
    mlflow.set_tag("instrlab.best_run_id", run.info.run_id)
    print(f"best run {run.info.run_id}: test_macro_f1 {result.test_macro_f1:.4f} "
          f"(val {metrics['best_val_macro_f1']:.4f})")
