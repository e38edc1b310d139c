"""Trial states as instrlab counts them, and trials of dead workers.

A trial counts towards ``n_trials`` when it is complete, pruned, failed with an error or
running; one cut short by an interruption (FAIL without a fail reason) does not.
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
    TAG_STATE,
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
    return True


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
