"""instrlab against a real MLflow tracking server: ``mlflow server`` on a free loopback
port, a fresh database of the throwaway PostgreSQL (scripts/postgres-test.sh) as its
backend store, artifacts stored and served by the server. Every instrlab command is a
subprocess that knows only ``MLFLOW_TRACKING_URI=http://...``; what arrived is read back
through ``MlflowClient`` from the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from instrlab.cli import build_parser
from instrlab.tracking.runs import (
    EXPERIMENT_KIND,
    TAG_EXPERIMENT_KIND,
    local_store,
    start_run,
    ui_hint,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ["--n-samples", "32", "--preset", "plain", "--workers", "1"]
TINY = [*DATA, "--epochs", "1", "--no-progress"]
KIND = {TAG_EXPERIMENT_KIND: EXPERIMENT_KIND}


def instrlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "instrlab.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, seconds: float, log: Path) -> None:
    """Wait until the MLflow server at ``base`` answers /health; fail with its log if it
    exits or takes longer than ``seconds``."""
    deadline = time.time() + seconds
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"mlflow server at {base} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process started with ``start_new_session`` and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``mlflow server`` on its own new database; the dataset is built meanwhile."""
    import psycopg2
    from sqlalchemy.engine import make_url

    root = tmp_path_factory.mktemp("server")
    db = f"mlflow_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {db}")
    # SQLAlchemy 2.1 picks psycopg 3 for postgresql://; the dev extra has psycopg2
    backend = make_url(postgres_url).set(drivername="postgresql+psycopg2", database=db)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
                        "INSTRLAB_SYSTEM_METRICS")}
    env.update(INSTRLAB_CACHE=str(root / "cache"), MLFLOW_TRACKING_URI=uri,
               MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1")  # tiny runs: sample every second
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1", "--backend-store-uri",
         backend.render_as_string(hide_password=False), "--serve-artifacts",
         "--artifacts-destination", str(root / "artifacts")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # no GenAI job runner: seven fewer processes starting on two cores
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    generate = subprocess.Popen(instrlab("generate", *DATA, "--quiet"), cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(uri, proc, 180, root / "server.log")
        assert generate.wait(timeout=180) == 0, generate.stderr.read()[-2000:]
        yield {"root": root, "uri": uri, "env": env, "artifacts": root / "artifacts"}
    finally:
        stop(proc)
        log.close()
        with contextlib.suppress(Exception):
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def tracked(server: dict) -> Iterator[dict]:
    """`instrlab main`, then a 2-trial `instrlab tune` beside `instrlab predict` of its model."""
    root, env = server["root"], server["env"]
    main = subprocess.run(instrlab("main", *TINY, "--heldout-samples", "0", "--run-name", "main"),
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert main.returncode == 0, main.stderr[-3000:]
    run_id = next(line.split()[1].rstrip(":") for line in main.stdout.splitlines()
                  if line.startswith("run "))
    wav = root / "clip.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1,
             22050)
    # a trial of 32 clips and one epoch lasts about a second: sample its system metrics often
    tune = subprocess.Popen(instrlab("tune", *TINY, "--n-trials", "2", "--retrain-best", "false",
                                     "--pruner", "none", "--storage", str(root / "j.log")),
                            cwd=root, env={**env, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    predict = subprocess.run(instrlab("predict", "--model", run_id, "--all", str(wav)), cwd=root,
                             env=env, capture_output=True, text=True, timeout=300)
    tune_out, tune_err = tune.communicate(timeout=300)
    assert tune.returncode == 0, tune_err[-3000:]
    tune_id = tune_out.strip().splitlines()[-1].split()[2].rstrip(":")
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server["uri"])
    try:
        yield {"main": run_id, "main_err": main.stderr, "tune": tune_id, "tune_err": tune_err,
               "predict": predict, "client": MlflowClient()}
    finally:
        mlflow.set_tracking_uri(old)


def children(client: MlflowClient, run_id: str) -> list:
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")


def test_main_run_arrives_with_metrics_system_metrics_and_a_tagged_experiment(
        tracked: dict) -> None:
    client = tracked["client"]
    run = client.get_run(tracked["main"])
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "instrlab-seed12"
    assert exp.tags[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND
    metrics = run.data.metrics
    for key in ("test_macro_f1", "test_mAP", "test_lrap", "best_val_macro_f1", "best_epoch"):
        assert key in metrics, key
    assert any(k.startswith("test_ap/") for k in metrics)
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics
    link = f"/#/experiments/{exp.experiment_id}/runs/{tracked['main']}"
    assert f"{link}?workflowType=machine_learning" in tracked["main_err"]


def test_local_store_hint_is_a_working_mlflow_ui_command(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a local store instrlab prints the ``mlflow ui`` command and the experiment's URL in
    the model-training view: the command, run from elsewhere, serves that experiment, and the
    installed UI routes ``#/experiments/ID?workflowType=machine_learning`` as the hint says."""
    monkeypatch.chdir(tmp_path)
    assert local_store("./mlruns") == str(tmp_path / "mlruns")
    assert local_store("postgresql://u:secret@db/mlflow") is None  # never print a password
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("sqlite:///mlflow.db")  # relative, as MLflow's default store
    try:
        client = MlflowClient()
        exp = client.create_experiment("instrlab-seed12")
        run_id = client.create_run(exp).info.run_id
        hint = ui_hint(exp, run_id)
    finally:
        mlflow.set_tracking_uri(old)
    command, url = [line.strip() for line in hint.splitlines()]
    assert command == f"MLflow UI: mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db"
    assert url == (f"then open http://127.0.0.1:5000/#/experiments/{exp}"
                   "?workflowType=machine_learning (model training view)")

    js = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    bundle = "".join(f.read_text(errors="ignore") for f in js.glob("main.*.js"))
    assert "createHashRouter" in bundle  # routes live after "#/"
    assert '.get("workflowType")' in bundle and '"machine_learning"' in bundle

    args = shlex.split(command.removeprefix("MLflow UI: "))
    args[0] = str(Path(sys.executable).parent / "mlflow")
    port = free_port()
    (tmp_path / "elsewhere").mkdir()
    log = open(tmp_path / "ui.log", "w")  # noqa: SIM115 - closed after the UI stops
    proc = subprocess.Popen([*args, "--port", str(port), "--workers", "1"],
                            cwd=tmp_path / "elsewhere", stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, 120, tmp_path / "ui.log")
        query = f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={run_id}"
        with urllib.request.urlopen(query, timeout=10) as resp:
            assert json.loads(resp.read())["run"]["info"]["experiment_id"] == exp
        with urllib.request.urlopen(f"{base}/", timeout=10) as resp:
            assert b"<html" in resp.read().lower()
    finally:
        stop(proc)
        log.close()


def test_nested_generate_run_dataset_input_and_artifacts_arrive(tracked: dict,
                                                                server: dict) -> None:
    client = tracked["client"]
    run = client.get_run(tracked["main"])
    nested = children(client, tracked["main"])
    assert [r.data.tags["instrlab.step"] for r in nested] == ["generate"]
    assert run.data.tags["instrlab.generate_run_id"] == nested[0].info.run_id
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.digest == run.data.tags["instrlab.dataset_digest"]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    plots = {a.path for a in client.list_artifacts(tracked["main"], "plots")}
    assert "plots/learning_curves.png" in plots
    stats = client.download_artifacts(tracked["main"], "dataset/stats.json",
                                      str(server["root"]))
    assert Path(stats).stat().st_size > 0
    assert list(server["artifacts"].rglob("stats.json")), "not stored by the server"


def test_model_arrives_and_predict_loads_it_from_the_server(tracked: dict) -> None:
    client = tracked["client"]
    run = client.get_run(tracked["main"])
    models = client.search_logged_models([run.info.experiment_id],
                                         filter_string=f"source_run_id = '{tracked['main']}'")
    assert models, "no model logged by the main run"
    predict = tracked["predict"]
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert "Acoustic Grand Piano" in predict.stdout


def test_tune_parent_and_trial_runs_arrive(tracked: dict) -> None:
    client = tracked["client"]
    parent = client.get_run(tracked["tune"])
    assert parent.data.tags["instrlab.step"] == "tune"
    assert any(k.startswith("system/") for k in parent.data.metrics)
    trials = [r for r in children(client, tracked["tune"])
              if r.data.tags.get("instrlab.tune_role") == "trial"]
    assert sorted(r.data.tags["instrlab.trial_number"] for r in trials) == ["0", "1"]
    assert all(r.info.status == "FINISHED" and "best_val_macro_f1" in r.data.metrics
               for r in trials)
    for r in trials:  # each trial its own CPU/memory charts (sampled every 0.2 s here)
        seconds = (r.info.end_time - r.info.start_time) / 1000
        assert seconds > 0.2, f"trial {r.info.run_id} too short to sample ({seconds:.2f} s)"
        assert "system/cpu_utilization_percentage" in r.data.metrics, (seconds, r.data.metrics)
    exp = parent.info.experiment_id
    link = f"/#/experiments/{exp}/runs/{tracked['tune']}?workflowType=machine_learning"
    assert link in tracked["tune_err"]


def test_start_run_tags_the_experiment_mlflow_run_chose_and_honours_the_off_switch(
        tracked: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``mlflow run`` does: the run exists (MLFLOW_RUN_ID) in an experiment MLflow made."""
    client = tracked["client"]
    exp = client.create_experiment(f"chosen-by-mlflow-{uuid.uuid4().hex[:6]}")
    other = client.create_experiment(f"genai-{uuid.uuid4().hex[:6]}",
                                     tags={TAG_EXPERIMENT_KIND: "genai_development"})
    created = client.create_run(exp)
    # a fresh process, as under `mlflow run`: no experiment chosen by an earlier test
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", exp)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_RUN_ID", created.info.run_id)
    with start_run() as run:
        time.sleep(1)
    assert run.info.run_id == created.info.run_id
    assert client.get_experiment(exp).tags[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND
    assert any(k.startswith("system/") for k in client.get_run(run.info.run_id).data.metrics)

    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("INSTRLAB_SYSTEM_METRICS", "1")  # restored after the flag sets it
    build_parser().parse_args(["main", "--no-system-metrics"])
    assert os.environ["INSTRLAB_SYSTEM_METRICS"] == "0"
    with start_run(experiment_id=other) as run:
        time.sleep(1)
    assert not any(k.startswith("system/") for k in client.get_run(run.info.run_id).data.metrics)
    assert client.get_experiment(other).tags[TAG_EXPERIMENT_KIND] == "genai_development"
