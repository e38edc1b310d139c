"""Trial states as instrlab counts them, and the trials and parent runs of dead processes.

A trial counts towards ``n_trials`` when it is complete, pruned, failed with an error or
running; one cut short by an interruption (FAIL without a fail reason) does not. A process
killed outright (SIGKILL, a crash) cannot end its trial or its MLflow runs: the next process
on the study does, when the recorded pid on this host is gone.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Sequence

import mlflow
import optuna
from optuna.trial import FrozenTrial, TrialState

from instrlab.console import console
from instrlab.tune.keys import (
    ATTR_FAIL,
    ATTR_HOST,
    ATTR_INTERRUPTED,
    ATTR_PID,
    ATTR_RUN,
    TAG_HOST,
    TAG_INTERRUPTED,
    TAG_PID,
    TAG_ROLE,
    TAG_STATE,
    TAG_STORAGE,
    TAG_STUDY,
)


def counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """Trials per state; ``counted`` is what ``n_trials`` is measured against."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "interrupted": 0,
           "counted": 0}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            out["running"] += 1
        elif t.state == TrialState.FAIL and ATTR_FAIL in t.user_attrs:
            out["failed"] += 1
        else:
            out["interrupted"] += 1
    out["counted"] = out["complete"] + out["pruned"] + out["failed"] + out["running"]
    return out


def state_name(t: FrozenTrial) -> str:
    """The trial's state, with a FAIL that an interruption caused shown as INTERRUPTED."""
    if t.state == TrialState.FAIL:
        return "INTERRUPTED" if ATTR_FAIL not in t.user_attrs else "FAIL"
    return t.state.name


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial with the highest value (the earliest among equals), if any."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended: an orphan nobody reaps (in a container) stays one
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _gone(host: object, pid: object) -> bool:
    """Whether the process ``pid`` recorded on ``host`` is known to have ended (this host only;
    this process is alive)."""
    try:
        pid = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return host == socket.gethostname() and pid != os.getpid() and not _alive(pid)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials of dead processes on this host as interrupted (FAIL, not counted).

    Storages with heartbeats (RDB) also fail trials of dead workers on other hosts after
    the grace period; a journal file has no heartbeat, hence this check.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host, me = socket.gethostname(), os.getpid()
    storage = study._storage
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(ATTR_PID)
        if t.user_attrs.get(ATTR_HOST) != host or not isinstance(pid, int):
            continue
        if pid != me and _alive(pid):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_INTERRUPTED, True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        dead.append(t.number)
        run_id = t.user_attrs.get(ATTR_RUN)
        if run_id:
            with contextlib.suppress(Exception):
                client = mlflow.MlflowClient()
                client.set_tag(run_id, TAG_STATE, "INTERRUPTED")
                client.set_terminated(run_id, "KILLED")
    if dead:
        console.print(f"tune: trials {', '.join(map(str, dead))} were cut short by an "
                      "interruption; they do not count and are run again")
    return dead


def end_dead_parent_runs(study_name: str, storage_display: str) -> list[str]:
    """End as KILLED the RUNNING parent runs of this study whose process on this host is gone,
    and their RUNNING nested runs (trials as INTERRUPTED) unless their own process still runs.

    Returns the parent run ids ended. Tracking errors are left for the run that follows.
    """
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    try:
        parents = mlflow.search_runs(
            search_all_experiments=True, output_format="list",
            filter_string=f"tags.`{TAG_ROLE}` = 'tune' and tags.`{TAG_HOST}` = '{host}' and "
                          "attributes.status = 'RUNNING'")
    except Exception:
        return []
    ended = []
    for parent in parents:
        tags = parent.data.tags
        if (tags.get(TAG_STUDY), tags.get(TAG_STORAGE)) != (study_name, storage_display) \
                or not _gone(tags.get(TAG_HOST), tags.get(TAG_PID)):
            continue
        run_id = parent.info.run_id
        with contextlib.suppress(Exception):
            children = mlflow.search_runs(
                experiment_ids=[parent.info.experiment_id], output_format="list",
                filter_string=f"tags.mlflow.parentRunId = '{run_id}' and "
                              "attributes.status = 'RUNNING'")
            for child in children:
                ctags = child.data.tags
                if TAG_PID in ctags and not _gone(ctags.get(TAG_HOST), ctags[TAG_PID]):
                    continue  # a worker of the dead process that still runs its trial
                if ctags.get(TAG_ROLE) == "trial":
                    client.set_tag(child.info.run_id, TAG_STATE, "INTERRUPTED")
                client.set_terminated(child.info.run_id, "KILLED")
            client.set_tag(run_id, TAG_INTERRUPTED, "true")
            client.set_terminated(run_id, "KILLED")
            ended.append(run_id)
    if ended:
        console.print(f"tune: parent run(s) {', '.join(ended)} of study {study_name} belonged to "
                      "a process that is gone; ended as KILLED", highlight=False, soft_wrap=True)
    return ended
