"""instrlab tune: Optuna studies whose trials are nested MLflow runs.

Real everything: FluidSynth datasets (64 clips), real training (2 epochs of a 16-wide
mel_cnn), journal files and a real PostgreSQL server (started by scripts/test, or by
this module through scripts/postgres-test.sh), MLflow SQLite stores in temp dirs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from instrlab.cli import main
from instrlab.dataset import DatasetConfig
from instrlab.errors import InstrlabError
from instrlab.models.factory import ModelConfig
from instrlab.synth.augment import AugmentConfig
from instrlab.training import TrainConfig
from instrlab.tune import (
    ATTR_FAIL,
    ATTR_INTERRUPTED,
    ATTR_PID,
    ATTR_RUN,
    ATTR_WORKER,
    SearchSpace,
    TuneOptions,
    counts,
    make_sampler,
    open_storage,
    open_study,
    run_tune,
    study_setup,
)

ROOT = Path(__file__).resolve().parent.parent
N = 64
DATA = DatasetConfig(n_samples=N, seed=3, augment=AugmentConfig())  # the CLI says --no-augment
MODEL = ModelConfig("mel_cnn", {"width": 16, "n_blocks": 2})
TRAIN = TrainConfig(epochs=2)
CLI = ["--n-samples", str(N), "--seed", "3", "--epochs", "2", "--model-param", "width=16",
       "--model-param", "n_blocks=2", "--workers", "1", "--no-progress"]


class PruneTrials(optuna.pruners.BasePruner):
    """Prunes the given trial numbers at their first report; ``interrupt`` raises Ctrl-C."""

    def __init__(self, numbers: set[int], interrupt: bool = False) -> None:
        self.numbers, self.interrupt = numbers, interrupt

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if trial.number in self.numbers and self.interrupt:
            raise KeyboardInterrupt
        return trial.number in self.numbers


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A working directory, a dataset cache and an MLflow store shared by this module."""
    root = tmp_path_factory.mktemp("tune")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("INSTRLAB_CACHE", str(root / "cache"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        mp.setenv(var, "")  # remembers the old value (or its absence) for undo...
        mp.delenv(var)  # ...which also drops what mlflow.set_experiment sets meanwhile
    old_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield {"root": root, "uri": uri}
    mlflow.set_tracking_uri(old_uri)
    mp.undo()


def options(world: dict, name: str, **kw: object) -> TuneOptions:
    base = {"study_name": name, "storage": str(world["root"] / f"{name}.log"), "n_trials": 3,
            "progress": False, "data_workers": 1, "pruner": "none"}
    return TuneOptions(**{**base, **kw})  # type: ignore[arg-type]


def child_runs(parent_id: str) -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


# ---------------------------------------------------------------- one study, in process


@pytest.fixture(scope="module")
def tuned(world: dict) -> dict:
    """Four trials (trial 1 pruned at its first epoch), then the best retrained and tested."""
    result = run_tune(options(world, "nested", n_trials=4), DATA, MODEL, TRAIN,
                      pruner=PruneTrials({1}))
    study = optuna.load_study(study_name="nested",
                              storage=open_storage(str(world["root"] / "nested.log")).storage)
    children = child_runs(result.parent_run_id)
    return {"result": result, "study": study, "parent": mlflow.get_run(result.parent_run_id),
            "trials": {int(r.data.tags["instrlab.trial_number"]): r for r in children
                       if r.data.tags.get("instrlab.tune_role") == "trial"},
            "best": [r for r in children if r.data.tags.get("instrlab.tune_role") == "best"]}


def test_every_trial_is_a_nested_run_with_curves_and_final_metrics(tuned: dict) -> None:
    study, runs = tuned["study"], tuned["trials"]
    assert sorted(runs) == [0, 1, 2, 3]
    client = mlflow.MlflowClient()
    for t in study.trials:
        run = runs[t.number]
        assert t.user_attrs[ATTR_RUN] == run.info.run_id
        assert run.data.tags["instrlab.study"] == "nested"
        assert run.data.tags["instrlab.step"] == "trial"
        assert run.data.tags["instrlab.trial_state"] == t.state.name
        assert float(run.data.params["tune.lr"]) == pytest.approx(t.params["lr"])
        assert run.data.params["train.batch_size"] == str(t.params["batch_size"])
        assert not any(k.startswith("test_") for k in run.data.metrics), "a trial saw test"
        assert not client.list_artifacts(run.info.run_id, "model")
        if t.state == TrialState.COMPLETE:
            history = client.get_metric_history(run.info.run_id, "val_macro_f1")
            assert [m.step for m in history] == [1, 2]
            assert run.data.metrics["best_val_macro_f1"] == pytest.approx(t.value)
            assert max(m.value for m in history) == pytest.approx(t.value)
            assert run.info.status == "FINISHED"
            assert {"train_loss", "val_loss", "seconds_trial"} <= set(run.data.metrics)


def test_pruned_trial_is_pruned_in_optuna_and_marked_in_mlflow(tuned: dict) -> None:
    t = tuned["study"].trials[1]
    assert t.state == TrialState.PRUNED
    run = tuned["trials"][1]
    assert run.info.status == "KILLED"
    assert run.data.tags["instrlab.trial_state"] == "PRUNED"
    assert run.data.metrics["pruned_at_epoch"] == 1
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in steps] == [1]
    assert tuned["parent"].data.metrics["n_trials_pruned"] == 1
    assert tuned["result"].counts["pruned"] == 1 and tuned["result"].counts["complete"] == 3


def test_parent_logs_best_params_value_and_plots(tuned: dict) -> None:
    parent, study = tuned["parent"], tuned["study"]
    assert parent.data.tags["instrlab.study"] == "nested"
    assert parent.data.tags["instrlab.storage"].endswith("nested.log")
    assert parent.data.metrics["best_val_macro_f1"] == pytest.approx(study.best_value)
    assert float(parent.data.params["best.lr"]) == pytest.approx(study.best_params["lr"])
    assert parent.data.params["best.batch_size"] == str(study.best_params["batch_size"])
    client = mlflow.MlflowClient()
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/param_importances.png",
            "plots/contour_lr_batch_size.png", "plots/slice.png"} <= plots
    tune = {a.path for a in client.list_artifacts(parent.info.run_id, "tune")}
    assert {"tune/trials.csv", "tune/best_params.json", "tune/search_space.json"} <= tune


def test_best_trial_is_retrained_and_tested_once(tuned: dict) -> None:
    [best] = tuned["best"]
    study = tuned["study"]
    assert best.data.tags["instrlab.trial_number"] == str(study.best_trial.number)
    assert float(best.data.params["train.lr"]) == pytest.approx(study.best_params["lr"])
    assert "test_macro_f1" in best.data.metrics
    assert tuned["parent"].data.metrics["best_test_macro_f1"] == pytest.approx(
        best.data.metrics["test_macro_f1"])
    paths = {a.path for a in mlflow.MlflowClient().list_artifacts(best.info.run_id,
                                                                   "model_meta")}
    assert "model_meta/instrlab_model.json" in paths
    assert tuned["result"].best_run_id == best.info.run_id


# ---------------------------------------------------------------- resume


def test_ctrl_c_then_the_same_study_continues(world: dict, tuned: dict) -> None:
    """Ctrl-C in trial 1: it is marked interrupted and not counted; reruns fill the study."""
    with pytest.raises(KeyboardInterrupt):
        run_tune(options(world, "resume", n_trials=3, retrain_best=False), DATA, MODEL, TRAIN,
                 pruner=PruneTrials({1}, interrupt=True))
    storage = open_storage(str(world["root"] / "resume.log")).storage
    study = optuna.load_study(study_name="resume", storage=storage)
    first = study.trials
    assert [t.state for t in first] == [TrialState.COMPLETE, TrialState.FAIL]
    assert first[1].user_attrs[ATTR_INTERRUPTED] is True
    killed = mlflow.get_run(first[1].user_attrs[ATTR_RUN])
    assert killed.info.status == "KILLED"
    assert killed.data.tags["instrlab.trial_state"] == "INTERRUPTED"
    parent = mlflow.get_run(killed.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"

    run_tune(options(world, "resume", n_trials=3, retrain_best=False), DATA, MODEL, TRAIN)
    run_tune(options(world, "resume", n_trials=4, retrain_best=False), DATA, MODEL, TRAIN)
    study = optuna.load_study(study_name="resume", storage=storage)
    trials = study.trials
    assert [t.number for t in trials] == list(range(5))
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.COMPLETE, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[0].value == first[0].value and trials[0].params == first[0].params
    assert counts(trials)["counted"] == 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5, "repeated params"


def test_failing_trials_are_marked_and_stop_the_study(world: dict, tuned: dict,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> dict:
        raise InstrlabError("training diverged: boom")

    monkeypatch.setattr("instrlab.pipeline.train_and_evaluate", boom)
    with pytest.raises(InstrlabError, match="3 trials in a row failed.*boom"):
        run_tune(options(world, "failing", n_trials=5), DATA, MODEL, TRAIN)
    study = optuna.load_study(study_name="failing",
                              storage=open_storage(str(world["root"] / "failing.log")).storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    assert all(t.user_attrs[ATTR_FAIL] == "training diverged: boom" for t in study.trials)
    assert counts(study.trials)["failed"] == 3
    run = mlflow.get_run(study.trials[0].user_attrs[ATTR_RUN])
    assert run.info.status == "FAILED" and run.data.tags["instrlab.trial_state"] == "FAIL"


def _env(world: dict) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    env.update(INSTRLAB_CACHE=str(world["root"] / "cache"), MLFLOW_TRACKING_URI=world["uri"])
    return env


def _tune_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "instrlab.cli", "tune", *CLI, "--pruner", "none", *args]


def test_killed_worker_then_rerun_with_two_workers(world: dict, tuned: dict) -> None:
    """SIGKILL mid-trial leaves a RUNNING trial; the rerun (2 workers) fails it and goes on."""
    log = world["root"] / "killed.log"
    cmd = _tune_cmd("--storage", str(log), "--study-name", "killed", "--retrain-best", "false")
    proc = subprocess.Popen([*cmd, "--n-trials", "3"], cwd=world["root"], env=_env(world),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = open_storage(str(log)).storage
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, "the worker finished before it could be killed"
        try:
            trials = optuna.load_study(study_name="killed", storage=storage).trials
        except KeyError:
            trials = []
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if done and any(t.state == TrialState.RUNNING and ATTR_RUN in t.user_attrs
                        for t in trials):  # in the middle of training
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t for t in optuna.load_study(study_name="killed",
                                                     storage=storage).trials}
    stale = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert len(stale) == 1 and before[stale[0]].user_attrs[ATTR_PID] == proc.pid

    rerun = subprocess.run([*cmd, "--n-trials", "5", "--n-workers", "2"], cwd=world["root"],
                           env=_env(world), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    dead = trials[stale[0]]
    assert dead.state == TrialState.FAIL and dead.user_attrs[ATTR_INTERRUPTED] is True
    assert ATTR_FAIL not in dead.user_attrs
    assert mlflow.get_run(dead.user_attrs[ATTR_RUN]).info.status == "KILLED"
    for n, t in before.items():
        if t.state == TrialState.COMPLETE:
            assert trials[n].value == t.value and trials[n].params == t.params
    c = counts(trials)
    assert c["counted"] == 5 and c["complete"] == 5, c
    parent_id = rerun.stdout.strip().splitlines()[-1].split()[2].rstrip(":")
    new = [t for t in trials if t.number not in before]
    runs = {r.info.run_id: r for r in child_runs(parent_id)}
    for t in new:  # trials of both processes are nested under the rerun's parent run
        assert t.user_attrs[ATTR_RUN] in runs
    assert {t.user_attrs[ATTR_WORKER] for t in new} <= {0, 1}


# ---------------------------------------------------------------- two workers, PostgreSQL


def test_two_workers_share_one_study_on_postgresql(world: dict, postgres_url: str,
                                                    tmp_path: Path) -> None:
    """Both start at once on a fresh PostgreSQL and a fresh MLflow store (tables race)."""
    name = f"two-workers-{uuid.uuid4().hex[:8]}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**_env(world), "MLFLOW_TRACKING_URI": uri}
    cmd = _tune_cmd("--storage", postgres_url, "--study-name", name, "--n-trials", "4",
                    "--threads", "1", "--retrain-best", "false")
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    storage = open_storage(postgres_url).storage
    trials = optuna.load_study(study_name=name, storage=storage).trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), "duplicate or missing trial numbers"
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert 4 <= len(trials) <= 5  # 5 only if both started their last trial at once
    assert {t.user_attrs[ATTR_PID] for t in trials} == {p.pid for p in procs}, \
        "both workers must have run trials"
    # no lost trials: each one has exactly one MLflow run, under one of the two parents
    mlflow.set_tracking_uri(uri)
    try:
        parents = {out.strip().splitlines()[-1].split()[2].rstrip(":") for out, _ in outs}
        runs = [r for pid in parents for r in child_runs(pid)
                if r.data.tags.get("instrlab.tune_role") == "trial"]
    finally:
        mlflow.set_tracking_uri(world["uri"])
    assert len(parents) == 2
    by_number = {}
    for r in runs:
        by_number.setdefault(int(r.data.tags["instrlab.trial_number"]), []).append(r)
    assert sorted(by_number) == numbers
    assert all(len(v) == 1 for v in by_number.values())
    for t in trials:
        assert by_number[t.number][0].info.run_id == t.user_attrs[ATTR_RUN]


# ---------------------------------------------------------------- search space and bad input


def test_search_space_defaults_overrides_and_targets() -> None:
    space = SearchSpace.parse([], DATA, MODEL, TRAIN)
    assert space.names == ["lr", "batch_size"]
    space = SearchSpace.parse(["lr=off dropout=uniform:0:0.5;weight_decay=loguniform:1e-6:1e-3",
                               "n_mels=categorical:32,64", "model.width=categorical:8,16",
                               "batch_size=int:16:64:16"], DATA, MODEL, TRAIN)
    assert space.names == ["batch_size", "dropout", "weight_decay", "n_mels", "width"]
    assert [p.target for p in space.params] == ["train", "model", "train", "data", "model"]
    assert [v.feature_params for v in space.data_variants(DATA)] == [{"n_mels": 32},
                                                                     {"n_mels": 64}]
    data, model, train = space.apply({"batch_size": 32, "dropout": 0.1, "weight_decay": 1e-4,
                                      "n_mels": 64, "width": 8}, DATA, MODEL, TRAIN)
    assert (train.batch_size, train.weight_decay, train.epochs) == (32, 1e-4, 2)
    assert model.params == {"width": 8, "n_blocks": 2, "dropout": 0.1}
    assert data.feature_params == {"n_mels": 64}


def test_sampler_is_seeded_per_trial_number() -> None:
    def draws(seed: int) -> list[float]:
        study = optuna.create_study(sampler=make_sampler("tpe", seed))
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    a, b = draws(0), draws(0)
    assert a == b and len(set(a)) == 3
    assert draws(1)[0] == a[1]  # seed + trial number


@pytest.mark.parametrize("spec, message", [
    ("lr=loguniform:1e-2:1e-4", "inverted range"),
    ("lr=uniform:0.1:0.1", "empty range"),
    ("batch_size=categorical:", "empty choice"),
    ("batch_size=int:64:16", "inverted range"),
    ("foo=uniform:0:1", "unknown parameter 'foo'"),
    ("lr=normal:0:1", "unknown kind"),
    ("lr=loguniform:0:1", "LOW > 0"),
    ("batch_size=categorical:1,32", "batch_size = 1"),
    ("batch_size=uniform:16:64", "batch_size takes int"),
    ("dropout=uniform:0:1.5", "dropout"),
    ("n_mels=int:32:64", "categorical"),
    ("device=categorical:cpu,cuda", "not tunable"),
    ("lr", "NAME=KIND:ARGS"),
])
def test_bad_search_space_is_one_line_error(spec: str, message: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tune", *CLI, "--search-space", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("instrlab: error: ") and len(err.splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "optuna-journal.log").exists(), "checked after opening storage"


@pytest.mark.parametrize("storage, message", [
    ("postgresql://nobody:secret@127.0.0.1:9/nothing", "cannot be reached"),
    ("mysql+nosuchdriver://u@127.0.0.1/x", "optuna storage"),
    ("not a url://x", "SQLAlchemy URL"),
    (".", "cannot be opened"),
])
def test_bad_storage_is_one_line_error(storage: str, message: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["tune", *CLI, "--storage", storage]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("instrlab: error: ") and len(err.splitlines()) == 1, err
    assert message in err
    assert "secret" not in err
    assert time.perf_counter() - t0 < 30


def test_existing_study_with_another_direction_space_or_setup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    log = str(tmp_path / "s.log")
    storage = open_storage(log)
    optuna.create_study(storage=storage.storage, study_name="minimized", direction="minimize")
    space = SearchSpace.parse([], DATA, MODEL, TRAIN)
    open_study(storage, "mine", space, study_setup(space, DATA, MODEL, TRAIN))

    def error(*args: str) -> str:
        assert main(["tune", *CLI, "--storage", log, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("instrlab: error: ") and len(err.splitlines()) == 1, err
        return err

    assert "direction minimize" in error("--study-name", "minimized")
    assert "another search space" in error("--study-name", "mine", "--search-space",
                                           "dropout=uniform:0:0.5")
    # the study was set up without augmentation: only the epochs differ here
    err = error("--study-name", "mine", "--epochs", "3", "--no-augment", "--no-spec-augment",
                "--preset", "recorded")  # DATA's soundfonts: the recorded families
    assert "other fixed settings" in err and "epochs" in err
    with pytest.raises(InstrlabError, match="another search space"):
        wider = SearchSpace.parse(["lr=loguniform:1e-5:1e-2"], DATA, MODEL, TRAIN)
        open_study(storage, "mine", wider, study_setup(wider, DATA, MODEL, TRAIN))
