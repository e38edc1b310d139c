"""``mlflow run .`` for real: MLflow's own project runner starts the MLproject's main entry
point, which tags the experiment it chose, prints plain progress lines (stderr is not a
terminal here, as in a log or CI) and ends with where to look in the UI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
from conftest import with_corpus
from mlflow import MlflowClient

from instrlab.tracking.runs import EXPERIMENT_KIND, TAG_EXPERIMENT_KIND

ROOT = Path(__file__).resolve().parent.parent
PLAIN_LINE = re.compile(r"^generate \S+: 32/32 \(100 %\), .+, elapsed \d+:\d\d:\d\d, ETA ",
                        re.MULTILINE)
RICH_BAR = re.compile(r"\d+/\d+ +\d+% ")  # the terminal bar's "5000/8000  62% "


def test_mlflow_run_main_end_to_end(tmp_path: Path, corpus_cache: Path) -> None:
    db = tmp_path / "mlflow.db"
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
           "INSTRLAB_CACHE": str(with_corpus(corpus_cache, tmp_path / "cache")),
           "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(key, None)
    params = {"preset": "plain", "n_samples": "32", "epochs": "1", "workers": "1",
              "heldout_samples": "16"}
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(ROOT), "-e", "main",
           "--env-manager", "local", "--experiment-name", "mlflow-run-e2e",
           *[a for k, v in params.items() for a in ("-P", f"{k}={v}")]]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("mlflow-run-e2e")
    assert exp.tags.get(TAG_EXPERIMENT_KIND) == EXPERIMENT_KIND
    top = [r for r in client.search_runs([exp.experiment_id])
           if "mlflow.parentRunId" not in r.data.tags]
    assert len(top) == 1, [r.info.run_name for r in top]
    run = top[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["data.n_samples"] == "32"
    assert run.data.params["train.epochs"] == "1"
    for key in ("test_macro_f1", "test_lrap", "heldout_macro_f1_octave_down",
                "heldout_macro_f1_octave_up", "heldout_macro_f1_music"):
        assert 0 <= run.data.metrics[key] <= 1, key
    assert any(k.startswith("system/") for k in run.data.metrics)

    assert PLAIN_LINE.search(done.stderr), done.stderr[-3000:]
    assert not RICH_BAR.search(done.stderr), done.stderr[-3000:]  # no bar drawn into a log
    hint = f"/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    assert "mlflow ui --backend-store-uri" in done.stderr and hint in done.stderr
    assert f"run {run.info.run_id}: test_macro_f1" in done.stdout
