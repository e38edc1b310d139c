"""Worker processes: ``n_workers - 1`` more processes running trials of the same study.

Each is ``python -m instrlab.tune.workers SPEC.json`` (:func:`worker_main`): trials only,
nested under the parent MLflow run of the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import mlflow
import optuna
from optuna.trial import TrialState

from instrlab.console import console
from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError
from instrlab.models.factory import ModelConfig
from instrlab.training import TrainConfig
from instrlab.tune.keys import ATTR_PID
from instrlab.tune.loop import (
    TrialContext,
    check_interrupt,
    prepare_datasets,
    run_trials,
    signals_as_interrupt,
)
from instrlab.tune.options import TuneOptions
from instrlab.tune.sampling import make_pruner, make_sampler
from instrlab.tune.space import SearchSpace
from instrlab.tune.storage import open_storage
from instrlab.tune.trials import counts, fail_dead_trials, state_name
from instrlab.tune.view import LiveView

WORKER_MODULE = "instrlab.tune.workers"
PR_SET_PDEATHSIG = 1  # prctl(2)


def spawn_workers(options: TuneOptions, data: DatasetConfig, model: ModelConfig,
                  train: TrainConfig, parent_id: str, exp_id: str,
                  name: str) -> list[subprocess.Popen[bytes]]:
    """``n_workers - 1`` processes of :func:`worker_main` on the same storage and parent run."""
    if options.n_workers <= 1:
        return []
    spec = {
        "options": {**dataclasses.asdict(options), "study_name": name, "n_workers": 1,
                    "progress": False, "retrain_best": False},
        "data": data.to_dict(), "model": dataclasses.asdict(model), "train": train.to_dict(),
        "parent_run_id": parent_id, "experiment_id": exp_id, "parent_pid": os.getpid(),
    }
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    procs = []
    for i in range(1, options.n_workers):
        fd, path = tempfile.mkstemp(prefix=f"instrlab-tune-worker{i}-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({**spec, "worker": i}, fh, default=str)
        # a session of its own: Ctrl-C reaches this process only, which stops the workers
        procs.append(subprocess.Popen([sys.executable, "-m", WORKER_MODULE, path], env=env,
                                      start_new_session=True))
    console.print(f"tune: started {len(procs)} worker process(es) beside this one")
    return procs


def wait_workers(procs: list[subprocess.Popen[bytes]], view: LiveView | None) -> None:
    """Until every worker process has ended."""
    while any(p.poll() is None for p in procs):
        check_interrupt()
        if view is not None:
            view.refresh()
        time.sleep(1.0)


def wait_running(study: optuna.Study, view: LiveView | None) -> None:
    """Let trials that other workers are running finish, so the summary is the study's.

    Trials of dead workers are failed meanwhile (heartbeat or dead process); trials that
    neither finish nor go stale are left after twice the longest trial time plus a minute.
    """
    trials = study.get_trials(deepcopy=False)
    longest = max([t.duration.total_seconds() for t in trials if t.duration] or [0.0])
    limit = time.time() + 2 * longest + 60
    said = False
    while time.time() < limit:
        check_interrupt()
        fail_dead_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not said:
            console.print(f"tune: waiting for {len(running)} trial(s) of other workers")
            said = True
        if view is not None:
            view.refresh()
        time.sleep(2.0)


def worker_exits(procs: list[subprocess.Popen[bytes]], study: optuna.Study,
                 n_trials: int) -> str | None:
    """One line for the workers that ended badly: which (pid), how (signal or exit code) and
    what became of their trials; None when all exited with 0."""
    trials = study.get_trials(deepcopy=False)
    full = counts(trials)["counted"] >= n_trials
    parts = []
    for i, p in enumerate(procs, 1):
        rc = p.returncode
        if rc == 0:
            continue
        how = f"was killed by {_signal_name(-rc)}" if rc < 0 else f"exited with code {rc}"
        cut = [str(t.number) for t in trials
               if t.user_attrs.get(ATTR_PID) == p.pid and state_name(t) == "INTERRUPTED"]
        text = f"tune worker {i} (pid {p.pid}) {how}"
        if cut:
            one = len(cut) == 1
            text += (f"; its trial{'' if one else 's'} {', '.join(cut)} "
                     f"{'is' if one else 'are'} marked interrupted and not counted, "
                     + ("another trial ran in its place" if full and one else
                        "other trials ran in their place" if full else
                        f"run the same command again to replace {'it' if one else 'them'}"))
        elif rc == 2:
            text += " (its error is above)"
        parts.append(text)
    return "; ".join(parts) or None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the workers still running (SIGTERM interrupts their trial), then kill."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def worker_main(argv: Sequence[str]) -> int:
    """A worker started by :func:`~instrlab.tune.study.run_tune`: trials only, under the
    given parent run. ``argv``: the path of the JSON spec, deleted once read."""
    path = argv[0]
    with open(path) as fh:
        spec = json.load(fh)
    with contextlib.suppress(OSError):
        os.unlink(path)
    _end_with_parent(spec.get("parent_pid"))
    options = TuneOptions(**spec["options"])
    data = DatasetConfig.from_dict(spec["data"])
    model = ModelConfig(**spec["model"])
    train = TrainConfig(**spec["train"])
    space = SearchSpace.parse(options.search_space, data, model, train)
    storage = open_storage(options.storage)
    study = optuna.load_study(study_name=options.study_name, storage=storage.storage,
                              sampler=make_sampler(options.sampler, options.sampler_seed),
                              pruner=make_pruner(options.pruner, options.pruner_startup_trials,
                                                 options.pruner_warmup_epochs))
    datasets = prepare_datasets(space, data, workers=options.data_workers, progress=False)
    ctx = TrialContext(study, space, data, model, train, datasets, spec["parent_run_id"],
                       spec["experiment_id"], storage, worker=int(spec["worker"]))
    deadline = time.time() + options.timeout if options.timeout else None
    with signals_as_interrupt():
        run_trials(ctx, options.n_trials, deadline)
    return 0


def _end_with_parent(parent_pid: int | None) -> None:
    """SIGTERM (an interruption) for this worker when the process that started it dies, even
    by SIGKILL: its parent run is ended by the next tune run, so must its trials be (Linux)."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before prctl
        raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    """``python -m instrlab.tune.workers SPEC.json``: errors as one line, exit code 2."""
    try:
        return worker_main(argv)
    except InstrlabError as exc:
        print(f"instrlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
