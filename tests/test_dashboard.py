"""optuna-dashboard (``pip install -e .[dashboard]``) reads the journal file ``instrlab
tune`` writes: a real dashboard process on a free port, queried over HTTP, on a journal of
plain Optuna and on one written through instrlab's storage (its flock lock)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


def dashboard_command() -> list[str]:
    """The optuna-dashboard console script next to this Python, else on PATH; skips if none."""
    local = Path(sys.executable).parent / "optuna-dashboard"
    found = str(local) if local.exists() else shutil.which("optuna-dashboard")
    if found is None:
        pytest.skip("optuna-dashboard is not installed (pip install -e .[dashboard])")
    return [found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def dashboard(journal: Path) -> Iterator[tuple[str, list[dict]]]:
    """optuna-dashboard on ``journal`` and a free port: its base URL and study summaries."""
    cmd = dashboard_command()
    port = free_port()
    proc = subprocess.Popen([*cmd, str(journal), "--port", str(port), "--host", "127.0.0.1"],
                            cwd=journal.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    pytest.fail(f"optuna-dashboard did not answer: {proc.stdout.read()}")
                time.sleep(0.2)
        yield base, studies
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_dashboard_lists_the_study_of_a_journal_file(tmp_path: Path) -> None:
    dashboard_command()  # skip before any work when it is missing
    journal = tmp_path / "optuna-journal.log"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)

    with dashboard(journal) as (base, studies):
        assert [(s["study_name"], s["directions"]) for s in studies] == [("tiny", ["maximize"])]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        assert len(detail["trials"]) == 2
        assert {t["state"].lower() for t in detail["trials"]} == {"complete"}


def test_dashboard_opens_a_journal_written_through_instrlabs_flock_lock(tmp_path: Path) -> None:
    """The journal as ``instrlab tune`` writes it: its storage (``JournalFlock``), its study
    attributes (search space, fixed settings) and a trial of its search space."""
    from instrlab.dataset import DatasetConfig
    from instrlab.models.factory import ModelConfig
    from instrlab.training import TrainConfig
    from instrlab.tune import SearchSpace, open_storage, open_study, study_setup
    from instrlab.tune.keys import ATTR_SPACE

    dashboard_command()
    journal = tmp_path / "optuna-journal.log"
    storage = open_storage(str(journal))
    data, model, train = DatasetConfig(), ModelConfig(), TrainConfig()
    space = SearchSpace.parse([], data, model, train)
    study = open_study(storage, "instrlab-tiny", space, study_setup(space, data, model, train))
    trial = study.ask()
    params = space.suggest(trial)
    study.tell(trial, 0.5)
    assert (tmp_path / "optuna-journal.log.flock").exists()  # JournalFlock took the lock

    with dashboard(journal) as (base, studies):
        assert [(s["study_name"], s["directions"]) for s in studies] == [
            ("instrlab-tiny", ["maximize"])]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        (shown,) = detail["trials"]
        assert shown["state"].lower() == "complete" and shown["values"] == [0.5]
        assert {p["name"] for p in shown["params"]} == set(params)
        assert ATTR_SPACE in {a["key"] for a in detail["user_attrs"]}
