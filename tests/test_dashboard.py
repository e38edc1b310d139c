"""optuna-dashboard (``pip install -e .[dashboard]``) reads the journal file ``instrlab
tune`` writes: a real dashboard process on a free port, queried over HTTP."""

from __future__ import annotations

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


def test_dashboard_lists_the_study_of_a_journal_file(tmp_path: Path) -> None:
    cmd = dashboard_command()
    journal = tmp_path / "optuna-journal.log"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)

    port = free_port()
    proc = subprocess.Popen([*cmd, str(journal), "--port", str(port), "--host", "127.0.0.1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
        assert [(s["study_name"], s["directions"]) for s in studies] == [("tiny", ["maximize"])]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}")
        assert len(detail["trials"]) == 2
        assert {t["state"].lower() for t in detail["trials"]} == {"complete"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
