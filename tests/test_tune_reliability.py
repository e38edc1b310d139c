"""instrlab tune when processes die: SIGKILL, Ctrl-C, a killed worker; and its one-line errors.

Real ``python -m instrlab.cli tune`` processes on a 24-clip dataset (built once, shared),
journal storages and one MLflow SQLite store in a temp dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text

from instrlab.cli import main
from instrlab.tune import (
    ATTR_FAIL,
    ATTR_INTERRUPTED,
    ATTR_PID,
    ATTR_RUN,
    ATTR_WORKER,
    counts,
    open_storage,
)
from instrlab.tune.loop import check_interrupt, signals_as_interrupt
from instrlab.tune.storage import AdvisoryLock, trial_budget_lock

N = 24
# 60 epochs of 24 clips: a trial trains for seconds, long enough to be caught running. The
# seed's protocol (FluidR3 alone): a worker starts in seconds, so it runs a trial while the
# main process is still busy (every default family costs it ~4 s to load, and on an idle
# machine the main process then finished all three trials first)
CLI = ["--n-samples", str(N), "--seed", "3", "--extra-soundfont", "none",
       "--epochs", "60", "--model-param", "width=8",
       "--model-param", "n_blocks=1", "--workers", "1", "--threads", "1", "--no-progress",
       "--pruner", "none", "--retrain-best", "false", "--top", "3"]
INTERRUPTED = "instrlab: interrupted; run the same command again to resume"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A working directory, a dataset cache and an MLflow store shared by this module."""
    root = tmp_path_factory.mktemp("tune-reliability")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    env.update(INSTRLAB_CACHE=str(root / "cache"), MLFLOW_TRACKING_URI=uri,
               INSTRLAB_SYSTEM_METRICS="0")
    old_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield {"root": root, "env": env}
    mlflow.set_tracking_uri(old_uri)


def start(world: dict, name: str, *args: str) -> subprocess.Popen[str]:
    """``instrlab tune`` on the journal ``NAME.log``, its output in ``NAME.out``/``.err``."""
    root = world["root"]
    cmd = [sys.executable, "-m", "instrlab.cli", "tune", *CLI, "--study-name", name,
           "--storage", str(root / f"{name}.log"), *args]
    with open(root / f"{name}.out", "a") as out, open(root / f"{name}.err", "w") as err:
        return subprocess.Popen(cmd, cwd=root, env=world["env"], stdout=out, stderr=err,
                                text=True)


def finish(world: dict, name: str, proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """Wait for ``proc``; its stderr."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return (world["root"] / f"{name}.err").read_text()


def trials(world: dict, name: str) -> list[FrozenTrial]:
    storage = open_storage(str(world["root"] / f"{name}.log")).storage
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:
        return []


def running_trials(world: dict, name: str, proc: subprocess.Popen[str],
                   workers: tuple[int, ...] = (0,)) -> dict[int, FrozenTrial]:
    """A trial of each of ``workers`` that trains (its MLflow run started), all at once."""
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, (world["root"] / f"{name}.err").read_text()[-3000:]
        running = {t.user_attrs.get(ATTR_WORKER): t for t in trials(world, name)
                   if t.state == TrialState.RUNNING and ATTR_RUN in t.user_attrs}
        if all(w in running for w in workers):
            time.sleep(0.5)  # into the training
            return {w: running[w] for w in workers}
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no trials of workers {workers} ran together within 120 s")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_sigkilled_tune_is_cleaned_up_by_the_next_run(world: dict) -> None:
    """The killed process's parent run and its trial's run end KILLED; the study goes on."""
    proc = start(world, "sigkill", "--n-trials", "1")
    trial = running_trials(world, "sigkill", proc)[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trial_run = mlflow.get_run(trial.user_attrs[ATTR_RUN])
    parent_id = trial_run.data.tags["mlflow.parentRunId"]
    assert trial_run.info.status == "RUNNING"
    assert mlflow.get_run(parent_id).info.status == "RUNNING"
    assert mlflow.get_run(parent_id).data.tags["instrlab.pid"] == str(proc.pid)

    rerun = start(world, "sigkill", "--n-trials", "1")
    err = finish(world, "sigkill", rerun)
    assert rerun.returncode == 0, err[-3000:]
    assert parent_id in err and "ended as KILLED" in err
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["instrlab.interrupted"] == "true"
    trial_run = mlflow.get_run(trial.user_attrs[ATTR_RUN])
    assert trial_run.info.status == "KILLED"
    assert trial_run.data.tags["instrlab.trial_state"] == "INTERRUPTED"
    after = trials(world, "sigkill")
    dead = after[trial.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs[ATTR_INTERRUPTED] is True
    assert ATTR_FAIL not in dead.user_attrs
    c = counts(after)
    assert c["complete"] == 1 and c["counted"] == 1, c
    new_parent = {mlflow.get_run(t.user_attrs[ATTR_RUN]).data.tags["mlflow.parentRunId"]
                  for t in after if t.state == TrialState.COMPLETE}
    assert len(new_parent) == 1 and parent_id not in new_parent
    assert mlflow.get_run(new_parent.pop()).info.status == "FINISHED"


def test_worker_of_a_sigkilled_tune_interrupts_its_trial(world: dict) -> None:
    """A worker whose main process is SIGKILLed ends its trial as interrupted and exits."""
    proc = start(world, "orphan", "--n-trials", "3", "--n-workers", "2")
    trial = running_trials(world, "orphan", proc, workers=(1,))[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while trials(world, "orphan")[trial.number].state == TrialState.RUNNING:
        assert time.time() < deadline, _worker_report(world, "orphan", trial.user_attrs[ATTR_PID])
        time.sleep(0.2)
    assert trials(world, "orphan")[trial.number].user_attrs[ATTR_INTERRUPTED] is True
    run = mlflow.get_run(trial.user_attrs[ATTR_RUN])
    assert run.info.status == "KILLED"
    assert run.data.tags["instrlab.trial_state"] == "INTERRUPTED"
    pid = trial.user_attrs[ATTR_PID]
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        assert time.time() < deadline, "the worker did not exit"
        time.sleep(0.2)


BURST_CHILD = """
import sys, time
from instrlab.tune.loop import check_interrupt, signals_as_interrupt
with signals_as_interrupt():
    print("ready", flush=True)
    end = time.time() + 3.0
    while time.time() < end:
        pass
    try:
        check_interrupt()
    except KeyboardInterrupt:
        sys.exit(130)
"""


def test_bursts_of_sigterm_interrupt_and_never_hang() -> None:
    """A SIGKILLed tune sends each worker one SIGTERM per thread, all at once (prctl(2)): a
    handler that takes a lock waits for ever on a second signal landing inside it (with a
    threading.Event as the flag, this test failed 3 runs of 3: hung in a futex)."""
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", BURST_CHILD], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        end = time.time() + 2.5
        while time.time() < end:
            for _ in range(16):
                os.kill(proc.pid, signal.SIGTERM)
            time.sleep(0.02)
        try:
            assert proc.wait(timeout=10) == 130
        except subprocess.TimeoutExpired:
            state = _state(proc.pid)
            proc.kill()
            proc.wait()
            pytest.fail(f"bursts of SIGTERM hung the process (state {state})")


def test_ctrl_c_is_one_line_and_exit_130(world: dict) -> None:
    """SIGINT mid-trial: no Optuna traceback, one instrlab line, the trial interrupted."""
    proc = start(world, "sigint", "--n-trials", "1")
    trial = running_trials(world, "sigint", proc)[0]
    proc.send_signal(signal.SIGINT)
    err = finish(world, "sigint", proc)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "failed" not in err, err
    assert [line for line in lines(err) if line.startswith("instrlab")] == [INTERRUPTED], err
    assert lines(err)[-1] == INTERRUPTED
    t = trials(world, "sigint")[trial.number]
    assert t.state == TrialState.FAIL and t.user_attrs[ATTR_INTERRUPTED] is True
    run = mlflow.get_run(t.user_attrs[ATTR_RUN])
    assert run.info.status == "KILLED"
    assert run.data.tags["instrlab.trial_state"] == "INTERRUPTED"
    assert mlflow.get_run(run.data.tags["mlflow.parentRunId"]).info.status == "KILLED"


class _SignalsItself:
    """Sends this process SIGINT from a finalizer, where Python drops the KeyboardInterrupt."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)


def test_ctrl_c_dropped_in_a_finalizer_is_raised_again(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        obj = _SignalsItself()
        del obj
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert "KeyboardInterrupt" not in capsys.readouterr().err
    check_interrupt()  # cleared once the block ends


def test_first_signal_waits_for_a_safe_point_and_a_second_one_does_not() -> None:
    """A KeyboardInterrupt raised where SIGTERM lands could cut a storage write in half:
    the first signal is raised by check_interrupt (after a batch, an epoch, a trial)."""
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():  # and still at the end
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run: nothing was raised here
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
        with pytest.raises(KeyboardInterrupt):  # a second signal: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    check_interrupt()


def test_sigterm_again_still_waits_for_a_safe_point() -> None:
    """A SIGKILLed multi-threaded parent sends its worker the parent-death SIGTERM once per
    thread it is handed to: repeats must not raise where they land (mid storage write)."""
    sent = 0
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        while sent < 3:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run: nothing was raised here
            sent += 1
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert sent == 3
    check_interrupt()


def test_a_signal_after_the_last_safe_point_still_interrupts() -> None:
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    check_interrupt()


HOLD_LOCK = """
import sys, time
from instrlab.tune.storage import JournalFlock
JournalFlock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_journal_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    """Optuna's symlink lock, left by a SIGKILLed holder, stalls every writer for 30 s; the
    journal's flock lock is dropped by the kernel with its holder."""
    import fcntl

    journal = tmp_path / "study.log"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(journal)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with open(f"{journal}.flock") as fh:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.kill()
            holder.wait()
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no grace period
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        holder.kill()
        holder.wait()
    storage = open_storage(str(journal)).storage
    optuna.create_study(study_name="after", storage=storage).optimize(lambda t: 1.0, n_trials=1)
    assert optuna.load_study(study_name="after", storage=storage).trials[0].value == 1.0


RACE_WORKER = """
import sys
import optuna
from instrlab.tune import loop
from instrlab.tune.storage import open_storage
info = open_storage(sys.argv[1])
loop.make_objective = lambda ctx: (lambda trial: trial.suggest_float("x", 0.0, 1.0))
print("ready", flush=True)
sys.stdin.readline()  # every worker starts at once
for name in sys.argv[3:]:
    study = optuna.load_study(study_name=name, storage=info.storage)
    ctx = loop.TrialContext(study, None, None, None, None, {}, "", "", info, worker=0)
    loop.run_trials(ctx, int(sys.argv[2]), None)
"""


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_workers_racing_for_the_last_trials_never_pass_n_trials(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Five processes run instant trials on one storage, study after study: counting the
    trials and starting one is a single step (a file lock; on PostgreSQL an advisory lock,
    which holds across machines: there every worker has its own temp dir), so every study
    ends with exactly ``n_trials``.
    Without the lock, workers that all see ``n_trials - 1`` each start one (about half of
    such studies overshot)."""
    spec = (str(tmp_path / "race.log") if kind == "journal"
            else request.getfixturevalue("postgres_url"))
    storage = open_storage(spec).storage
    names = [f"race-{tmp_path.name}-{i}" for i in range(10)]
    for name in names:
        optuna.create_study(study_name=name, storage=storage)
    n_trials = 6
    procs = []
    for i in range(5):  # on PostgreSQL each as if on its own machine: no shared temp dir
        tmp = tmp_path / f"host{i}" if kind == "postgresql" else tmp_path
        tmp.mkdir(exist_ok=True)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", RACE_WORKER, spec, str(n_trials), *names],
            env={**os.environ, "TMPDIR": str(tmp)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True))
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        assert [p.wait(timeout=120) for p in procs] == [0] * 5
    finally:
        for p in procs:
            p.kill()
            p.wait()
    storage = open_storage(spec).storage
    found = {name: counts(optuna.load_study(study_name=name, storage=storage).trials)
             for name in names}
    assert all(c["complete"] == c["counted"] == n_trials for c in found.values()), found


HOLD_BUDGET_LOCK = """
import sys, time
from instrlab.tune.storage import open_storage, trial_budget_lock
trial_budget_lock(open_storage(sys.argv[1]), "held").acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_trial_budget_lock_of_a_killed_worker_is_freed_by_postgresql(postgres_url: str) -> None:
    """A SIGKILLed worker holding the advisory lock leaves nothing behind: its connection
    dies and the server frees the lock, so the other workers go on."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_BUDGET_LOCK, postgres_url],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = trial_budget_lock(open_storage(postgres_url), "held")
        assert isinstance(lock, AdvisoryLock)
        engine = open_storage(postgres_url).storage.engine
        with engine.connect() as conn:
            key = lock.key
            assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar() \
                is False
            holder.kill()
            holder.wait()
            deadline = time.time() + 30
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": key}).scalar():
                assert time.time() < deadline, "the dead worker's lock was never freed"
                time.sleep(0.1)
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def _stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the process name: state, parent pid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _worker_report(world: dict, name: str, pid: int) -> str:
    """Why a worker's trial is still RUNNING: the worker's process state, where it waits in
    the kernel, and the tail of the run's stderr (which the workers share)."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        wchan = "-"
    err = (world["root"] / f"{name}.err").read_text()[-3000:]
    return (f"the trial is still RUNNING 60 s after its tune process died: worker {pid} is "
            f"{_state(pid)} (waiting in {wchan}); stderr:\n{err}")


def _state(pid: int) -> str:
    try:
        return _stat(pid)[0]
    except OSError:
        return "gone"


def _ppid(pid: int) -> int:
    return int(_stat(pid)[1])


def test_sigkilled_worker_is_named_with_its_signal_and_trial(world: dict) -> None:
    """``--n-workers 2``, the worker SIGKILLed mid-trial: the main process fills the study
    and says which worker died, how, and what became of its trial."""
    proc = start(world, "worker", "--n-trials", "3", "--n-workers", "2")
    trial = running_trials(world, "worker", proc, workers=(1,))[1]
    pid = trial.user_attrs[ATTR_PID]
    assert pid != proc.pid and _ppid(pid) == proc.pid
    os.kill(pid, signal.SIGKILL)
    err = finish(world, "worker", proc, timeout=180)
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err
    last = lines(err)[-1]
    assert last == (f"instrlab: error: tune worker 1 (pid {pid}) was killed by SIGKILL; its "
                    f"trial {trial.number} is marked interrupted and not counted, another "
                    "trial ran in its place"), err
    after = trials(world, "worker")
    dead = after[trial.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs[ATTR_INTERRUPTED] is True
    assert mlflow.get_run(dead.user_attrs[ATTR_RUN]).info.status == "KILLED"
    assert counts(after)["counted"] == 3


@pytest.mark.parametrize("args, message", [
    (["--search-space", "lr=uniform:0.001:0.01 lr=loguniform:1e-4:1e-2"],
     "--search-space gives lr twice"),
    (["--search-space", "lr=uniform:0.001:0.01", "--search-space", "train.lr=off"],
     "--search-space gives lr twice"),
    (["--search-space", "dropout=uniform:0:0.5;dropout=uniform:0.1:0.2"],
     "--search-space gives dropout twice"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "-5"], "--timeout"),
    (["--top", "-1"], "--top"),
    (["--top", "0"], "--top"),
])
def test_bad_study_options_are_one_line_errors(args: list[str], message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["tune", *CLI, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("instrlab: error: ") and len(err.splitlines()) == 1, err
    assert message in err
    assert not any(tmp_path.iterdir()), "work started before the check"
