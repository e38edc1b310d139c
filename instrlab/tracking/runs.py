"""MLflow helpers: experiments, runs, reachability, finished-run reuse, figures."""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from instrlab.errors import InstrlabError, first_line

# artifact downloads print tqdm bars into our rich output otherwise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# read once: mlflow.set_experiment() itself sets MLFLOW_EXPERIMENT_ID in this process
_USER_CHOSE_EXPERIMENT = bool(os.environ.get("MLFLOW_EXPERIMENT_ID")
                              or os.environ.get("MLFLOW_EXPERIMENT_NAME"))

TAG_STEP = "instrlab.step"
TAG_DIGEST = "instrlab.dataset_digest"
TAG_TRAINED_RUN = "instrlab.trained_run_id"

# what MLflow 3's UI reads to treat an experiment as model training rather than GenAI
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

SYSTEM_METRICS_ENV = "INSTRLAB_SYSTEM_METRICS"
"""``0`` turns system metrics off for every run of this process and its workers."""
SYSTEM_METRICS_INTERVAL_S = 10
"""Seconds between samples, each logged at once (``benchmarks/bench_system_metrics.py``)."""

_tagged: set[tuple[str, str]] = set()  # (tracking URI, experiment id) seen by tag_experiment


def check_tracking() -> str:
    """The tracking URI in use, after checking that it answers (one-line error if not)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        mlflow.search_experiments(max_results=1)
    except Exception as exc:  # the client raises many kinds for an unreachable store
        first = first_line(exc)
        raise InstrlabError(
            f"MLflow tracking URI {uri} cannot be reached ({first}); start the tracking "
            "server or fix MLFLOW_TRACKING_URI"
        ) from exc
    return uri


def use_experiment(instrument_set: str) -> None:
    """One experiment per instrument set, unless ``mlflow run`` or the user chose one.

    Either way the experiment is tagged as model training (by :func:`start_run` when
    MLflow chose it).
    """
    if os.environ.get("MLFLOW_RUN_ID") or _USER_CHOSE_EXPERIMENT:
        return
    tag_experiment(mlflow.set_experiment(f"instrlab-{instrument_set}").experiment_id)


def tag_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training, unless it has a kind already (once a process)."""
    key = (mlflow.get_tracking_uri(), experiment_id)
    if key in _tagged:
        return
    _tagged.add(key)
    try:
        if TAG_EXPERIMENT_KIND not in mlflow.get_experiment(experiment_id).tags:
            MlflowClient().set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND,
                                              EXPERIMENT_KIND)
    except Exception:  # e.g. no permission on a shared server: the run matters more
        pass


def system_metrics_enabled() -> bool:
    """Whether new runs sample CPU, memory, disk, network (and GPU with nvidia-ml-py).

    On unless ``INSTRLAB_SYSTEM_METRICS=0`` (``--no-system-metrics`` sets it) or psutil
    is missing.
    """
    if os.environ.get(SYSTEM_METRICS_ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    return importlib.util.find_spec("psutil") is not None


def start_run(**kwargs: Any) -> mlflow.ActiveRun:
    """``mlflow.start_run(**kwargs)`` with system metrics as configured; the run's
    experiment (also one MLflow chose, e.g. under ``mlflow run``) is tagged as model
    training. Every run instrlab starts goes through here."""
    enabled = system_metrics_enabled()
    if enabled:
        # MLflow's own variables win, so a user (or a test) can sample more often
        if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
            mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
        if not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"):
            mlflow.set_system_metrics_samples_before_logging(1)
        # "Started/Stopping monitoring system metrics" at INFO, for every run, otherwise
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    active = mlflow.start_run(log_system_metrics=enabled, **kwargs)
    tag_experiment(active.info.experiment_id)
    return active


ML_VIEW = "?workflowType=machine_learning"
"""The query (inside the UI's ``#/`` route) that opens MLflow 3's model-training view."""
LOCAL_UI = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` listens by default."""


def ui_link(experiment_id: str, run_id: str) -> str | None:
    """The run's page on an HTTP tracking server, in the UI's model-training view.

    MLflow 3.17's UI takes GenAI or model training from a switch kept in the browser (GenAI
    until flipped), not from the experiment's tag; ``workflowType`` in the link selects it.
    """
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{ML_VIEW}"


def local_store(uri: str) -> str | None:
    """A local tracking URI (SQLite file, file store, ``./mlruns``) made absolute, as
    ``mlflow ui --backend-store-uri`` takes it from any directory; None for anything else."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not path or path.startswith(":memory:"):
            return None
        return f"sqlite:///{Path(path).resolve()}"
    if uri.startswith("file:"):
        return str(Path(url2pathname(urlparse(uri).path)).resolve())
    if "://" in uri or uri.startswith("databricks"):
        return None
    return str(Path(uri).resolve())


def ui_hint(experiment_id: str, run_id: str) -> str | None:
    """How to see the run in the UI's model-training view: the run's link on a tracking
    server, or for a local store the ``mlflow ui`` command and the experiment's URL."""
    link = ui_link(experiment_id, run_id)
    if link:
        return f"MLflow UI (model training view): {link}"
    store = local_store(mlflow.get_tracking_uri())
    if store is None:
        return None
    return (f"MLflow UI: mlflow ui --backend-store-uri {shlex.quote(store)}\n"
            f"  then open {LOCAL_UI}/#/experiments/{experiment_id}{ML_VIEW} "
            "(model training view)")


def print_ui_hint(run_id: str, experiment_id: str | None = None) -> None:
    """Print :func:`ui_hint` on stderr; a store that cannot say the experiment prints none."""
    from instrlab.console import console

    try:
        experiment_id = experiment_id or MlflowClient().get_run(run_id).info.experiment_id
    except Exception:  # the run is done: a hint is not worth failing the command
        return
    hint = ui_hint(experiment_id, run_id)
    if hint:
        console.print(hint, highlight=False, soft_wrap=True, markup=False)


def find_finished_run(tags: dict[str, str]) -> Run | None:
    """The newest FINISHED run in the current experiment whose tags all match ``tags``."""
    exp = mlflow.get_experiment_by_name(_experiment_name()) if _experiment_name() else None
    ids = [exp.experiment_id] if exp else None
    filt = " and ".join([f"tags.`{k}` = '{v}'" for k, v in tags.items()]
                        + ["attributes.status = 'FINISHED'"])
    try:
        runs = mlflow.search_runs(experiment_ids=ids, filter_string=filt, max_results=1,
                                  order_by=["attributes.start_time DESC"], output_format="list")
    except MlflowException:
        return None
    return runs[0] if runs else None


def _experiment_name() -> str | None:
    active = mlflow.active_run()
    if active is not None:
        return mlflow.get_experiment(active.info.experiment_id).name
    return None


def log_figure(fig: Any, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact and free it."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="instrlab-")

