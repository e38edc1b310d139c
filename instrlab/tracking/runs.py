"""MLflow helpers: experiments, reachability, finished-run reuse, figures."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import mlflow
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
    """One experiment per instrument set, unless ``mlflow run`` or the user chose one."""
    if os.environ.get("MLFLOW_RUN_ID") or _USER_CHOSE_EXPERIMENT:
        return
    mlflow.set_experiment(f"instrlab-{instrument_set}")


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

