"""Dataset builds that race, die or find damage: concurrent builds of one dataset, builds
killed at each step of the write sequence, damaged finished datasets. Real processes,
real files, real SIGKILL; every result is compared byte for byte with an uninterrupted
build. Configurations are tiny: 40 clips, two chunks (32 + 8)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from instrlab.cli import resolve_config
from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset
from instrlab.dataset.build import dataset_name
from instrlab.dataset.config import identity_digest
from instrlab.dataset.integrity import inspect_dataset
from instrlab.dataset.lock import claim
from instrlab.dataset.partial import partial_problem
from instrlab.dataset.render import SampleRenderer
from instrlab.errors import InstrlabError

N = 40
FILES = ("COMPLETE", "config.json", "features.npy", "labels.npy", "manifest.jsonl",
         "stats.json")
# The seed's protocol, as tiny_config states it (the defaults train on more soundfonts and
# on music too); the `config` fixture checks that this resolves to it.
GENERATE = [sys.executable, "-m", "instrlab.cli", "generate", "--preset", "plain",
            "--n-samples", str(N), "--seed", "7", "--workers", "1", "--quiet"]
MARK = 12.5  # written into row 0 of a partial: still there after a rerun = chunk 0 was kept


@pytest.fixture(scope="module")
def config(make_config: Callable[..., DatasetConfig]) -> DatasetConfig:
    """The tiny config; the ``instrlab generate`` processes here build the same dataset."""
    cfg = make_config(n_samples=N)
    assert resolve_config(GENERATE[3:]).data == cfg, "GENERATE builds another dataset"
    return cfg


@pytest.fixture(scope="module")
def name(config: DatasetConfig) -> str:
    """The dataset's content name in the cache; every build here uses it."""
    return dataset_name(config, identity_digest(SampleRenderer(config).identity()))


@pytest.fixture(scope="module")
def reference(config: DatasetConfig, name: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """An uninterrupted build, in one process, where a cache would put it."""
    cache = tmp_path_factory.mktemp("reference")
    return generate_dataset(config, out=cache / "datasets" / name, workers=1, progress=False)


@pytest.fixture(scope="module")
def killed(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``.partial`` of a real build SIGKILLed after its first chunk (lock file left)."""
    out = tmp_path_factory.mktemp("killed") / name
    proc = subprocess.Popen([*GENERATE, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    partial = out.with_name(name + ".partial")
    try:
        wait_for(lambda: (partial / "chunks" / "00000.json").exists(), proc)
    finally:
        proc.kill()
        proc.wait()
    assert sorted(p.name for p in (partial / "chunks").iterdir()) == ["00000.json"], \
        "the build finished its second chunk before it could be killed"
    assert out.with_name(name + ".lock").exists()  # left by the dead holder
    return partial


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, f"process ended early ({proc.returncode})"
        assert time.monotonic() < deadline, f"nothing happened within {limit} s"
        time.sleep(0.005)


def read_line(proc: subprocess.Popen, limit: float = 120) -> str:
    """The next line ``proc`` writes on stderr (a pipe), or a failure after ``limit`` s."""
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], limit)
    assert ready, f"no line on stderr within {limit} s"
    return proc.stderr.readline().decode()


def assert_same(path: Path, reference: Path) -> None:
    """``path`` is the reference dataset, byte for byte, with nothing left beside it."""
    assert sorted(p.name for p in path.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (path / name).read_bytes() == (reference / name).read_bytes(), name
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .partial, .lock
    open_dataset(path)


def notes(err: str) -> list[str]:
    lines = err.splitlines()
    assert all(line.startswith("instrlab: ") for line in lines), err
    return lines


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts ``instrlab generate`` processes; any still running at the end are killed."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([*GENERATE, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


# --- (a) two processes, one dataset -------------------------------------------------------

@pytest.mark.parametrize("where", ["out", "cache", "out again"])
def test_concurrent_builds_of_one_dataset(where: str, name: str, reference: Path,
                                          tmp_path: Path, spawn: Callable[..., subprocess.Popen]
                                          ) -> None:
    """Started at the same instant: both succeed, one builds, the other waits (or comes
    after) and reuses it; the dataset is whole and the bytes of an uninterrupted build."""
    if where == "cache":
        path = tmp_path / "cache" / "datasets" / name
        args, env = (), {"INSTRLAB_CACHE": str(tmp_path / "cache")}
    else:
        path = tmp_path / name
        args, env = ("--out", str(path)), {}
    procs = [spawn(*args, env=env) for _ in range(2)]
    results = [proc.communicate(timeout=180) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == str(path)
        assert all("waiting for another process to finish building" in line
                   for line in notes(err.decode())), err.decode()  # no discard, no resume
    assert sum(bool(err) for _, err in results) <= 1
    assert_same(path, reference)


def test_a_waiting_process_reuses_what_the_first_built(name: str, reference: Path,
                                                       tmp_path: Path,
                                                       spawn: Callable[..., subprocess.Popen]
                                                       ) -> None:
    """This test holds the build lock (as a builder would) while a real process asks for
    the dataset: it notes that it waits, and once the dataset is in place and the lock
    released it returns it without building anything."""
    path = tmp_path / name
    with claim(path):
        second = spawn("--out", str(path))
        line = read_line(second)
        assert line == (f"instrlab: waiting for another process to finish building {path} "
                        f"(it holds {tmp_path / name}.lock)\n")
        time.sleep(0.2)
        assert second.poll() is None
        shutil.copytree(reference, path)
        stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0 and out.decode().strip() == str(path), err.decode()
    assert err == b""  # nothing after the waiting note: no build, no resume
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == stamps
    assert_same(path, reference)


def test_a_killed_lock_holder_blocks_nobody(name: str, reference: Path, tmp_path: Path,
                                            spawn: Callable[..., subprocess.Popen]) -> None:
    """The first builder dies (SIGKILL) while the second waits for its lock: the second
    takes over at once and resumes the first one's chunk."""
    path = tmp_path / name
    first = spawn("--out", str(path))
    wait_for(lambda: (tmp_path / f"{name}.partial" / "chunks" / "00000.json").exists(), first)
    first.send_signal(signal.SIGSTOP)
    second = spawn("--out", str(path))
    assert "waiting for another process" in read_line(second)
    first.kill()
    first.wait()
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err.decode()
    assert notes(err.decode()) == [
        f"instrlab: resuming the partial build {path}.partial: 32 of {N} samples done"]
    assert_same(path, reference)


# --- (b) killed builds --------------------------------------------------------------------

def mark_row_zero(partial: Path) -> None:
    feats = np.load(partial / "features.npy", mmap_mode="r+")
    feats[0, 0, 0] = MARK
    feats.flush()


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size if size >= 0 else path.stat().st_size + size)


def tmp_record(partial: Path) -> None:
    """Killed after writing chunk 1's record to its .tmp file (and config.json's .tmp)."""
    record = (partial / "chunks" / "00000.json").read_text()
    (partial / "chunks" / "00001.json.tmp").write_text(record[: len(record) // 2])
    (partial / "config.json.tmp").write_text("{")


# Damage made on disk (file deleted, cut or half-written) from a real killed build: a
# SIGKILL between two adjacent writes (features.npy, then labels.npy; a .tmp file, then
# its rename) cannot be timed reliably from outside.
RESUMED = {
    "killed after chunk 0": (lambda p: None, 32, True),
    "killed after a chunk's .json.tmp": (tmp_record, 32, True),
    "chunk 0's record unreadable": (
        lambda p: (p / "chunks" / "00000.json").write_text('[{"index": 0'), 0, False),
}
DISCARDED = {
    "features.npy written, labels.npy not yet": (
        lambda p: (p / "labels.npy").unlink(), "labels.npy is missing"),
    "features.npy header cut": (
        lambda p: truncate(p / "features.npy", 60), "features.npy has an unreadable header"),
}
UNREADABLE = {  # found the same way (partial_problem), so not each built again here
    **DISCARDED,
    "killed while creating features.npy": (
        lambda p: truncate(p / "features.npy", 4096), "features.npy has 4096 bytes"),
    "labels.npy rows cut": (lambda p: truncate(p / "labels.npy", -7), "labels.npy has"),
    "config.json missing": (lambda p: (p / "config.json").unlink(), "config.json is missing"),
    "config.json cut": (lambda p: truncate(p / "config.json", 10),
                        "config.json is not readable JSON"),
    "another configuration": (
        lambda p: (p / "config.json").write_text('{"digest": "0123456789abcdef"}'),
        "it was for another configuration, digest 0123456789abcdef"),
}


def rerun(config: DatasetConfig, partial: Path, capsys: pytest.CaptureFixture[str]
          ) -> tuple[Path, list[str]]:
    capsys.readouterr()
    path = generate_dataset(config, out=partial.with_name(partial.name[:-len(".partial")]),
                            workers=1, progress=False)
    return path, notes(capsys.readouterr().err)


@pytest.mark.parametrize("case", list(RESUMED))
def test_a_killed_build_resumes(case: str, config: DatasetConfig, killed: Path,
                                reference: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    damage, done, kept = RESUMED[case]
    partial = Path(shutil.copytree(killed.parent, tmp_path / "run")) / killed.name
    mark_row_zero(partial)
    damage(partial)
    path, said = rerun(config, partial, capsys)
    assert said == [f"instrlab: resuming the partial build {partial}: {done} of {N} samples done"]
    feats = np.load(path / "features.npy", mmap_mode="r+")
    assert (feats[0, 0, 0] == MARK) == kept  # chunk 0 kept, not rendered again (or redone)
    if kept:
        feats[0, 0, 0] = np.load(reference / "features.npy", mmap_mode="r")[0, 0, 0]
        feats.flush()
    del feats
    assert_same(path, reference)


@pytest.mark.parametrize("case", list(DISCARDED))
def test_an_unreadable_partial_build_is_started_again(case: str, config: DatasetConfig,
                                                      killed: Path, reference: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    damage, problem = DISCARDED[case]
    partial = Path(shutil.copytree(killed.parent, tmp_path / "run")) / killed.name
    damage(partial)
    path, said = rerun(config, partial, capsys)
    assert len(said) == 1, said
    assert said[0].startswith(f"instrlab: discarding the partial build {partial} ({problem}")
    assert said[0].endswith("; starting again")
    assert_same(path, reference)


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_what_makes_a_partial_build_unreadable(case: str, killed: Path, tmp_path: Path) -> None:
    damage, problem = UNREADABLE[case]
    partial = Path(shutil.copytree(killed, tmp_path / killed.name))
    meta = json.loads((partial / "config.json").read_text())
    assert partial_problem(partial, meta) is None
    damage(partial)
    assert (partial_problem(partial, meta) or "").startswith(problem)


def test_a_whole_partial_build_killed_before_its_rename_is_only_renamed(
        config: DatasetConfig, reference: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    partial = tmp_path / f"{reference.name}.partial"
    shutil.copytree(reference, partial)
    (partial / "chunks").mkdir()  # killed while removing the chunk records
    (partial / "chunks" / "00001.json").write_text("[]")
    stamp = (partial / "features.npy").stat().st_mtime_ns
    path, said = rerun(config, partial, capsys)
    assert said == [f"instrlab: finishing the partial build {partial}: it is whole, only not "
                    "renamed"]
    assert (path / "features.npy").stat().st_mtime_ns == stamp  # nothing rendered again
    assert_same(path, reference)


# A real `instrlab generate` that SIGKILLs itself at one write step: `python -c KILL_AT HOOK
# NTH WHEN ARGS...` wraps one write function of the build so that its NTH call (on the
# build's files) kills the process before or after the real call, then runs the CLI.
KILL_AT = """
import os, signal, sys
from pathlib import Path
import numpy as np
from instrlab.dataset import build, partial
from instrlab.cli import main

hook, nth, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = 0

def wrap(name, real, ours):
    def wrapped(*args, **kwargs):
        global calls
        hit = name == hook and ours(*args, **kwargs) and (calls := calls + 1) == nth
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped

def ours(path, *args, **kwargs):
    return ".partial" in str(path)

np.lib.format.open_memmap = wrap("create array", np.lib.format.open_memmap,
                                 lambda *a, **k: k.get("mode") == "w+")
json_writer = wrap("write_json", partial.write_json, ours)
partial.write_json = build.write_json = json_writer
os.pwrite = wrap("row", os.pwrite, lambda *a: True)
Path.replace = wrap("rename .tmp", Path.replace, ours)
Path.write_text = wrap("COMPLETE", Path.write_text, lambda p, *a: p.name == "COMPLETE")
Path.rename = wrap("rename into place", Path.rename, ours)
sys.argv = ["instrlab", *sys.argv[4:]]
sys.exit(main())
"""
NOTE_CONFIG_MISSING = "discarding the partial build {partial} (config.json is missing); " \
                      "starting again"
FINISHING = "finishing the partial build {partial}: it is whole, only not renamed"


def resuming(done: int) -> str:
    return f"resuming the partial build {{partial}}: {done} of {N} samples done"


KILL_STEPS = {  # case: (hook, nth call, before/after it, the rerun's note or None)
    "creating features.npy": ("create array", 1, "before", NOTE_CONFIG_MISSING),
    "features.npy created, labels.npy not": ("create array", 1, "after", NOTE_CONFIG_MISSING),
    "config.json.tmp not renamed": ("rename .tmp", 1, "before", NOTE_CONFIG_MISSING),
    "config.json written, no row yet": ("write_json", 1, "after", resuming(0)),
    "half of chunk 0's rows": ("row", 16, "after", resuming(0)),
    "chunk 0's record .tmp not renamed": ("rename .tmp", 2, "before", resuming(0)),
    "chunk 0 recorded": ("write_json", 2, "after", resuming(32)),
    "chunk 1's rows, no record": ("write_json", 3, "before", resuming(32)),
    "manifest.jsonl.tmp not renamed": ("rename .tmp", 4, "before", resuming(N)),
    "stats.json written, COMPLETE not": ("COMPLETE", 1, "before", resuming(N)),
    "COMPLETE written, chunks/ not removed": ("COMPLETE", 1, "after", FINISHING),
    "chunks/ removed, not renamed into place": ("rename into place", 1, "before", FINISHING),
    "renamed, lock not released": ("rename into place", 1, "after", None),
}


@pytest.mark.parametrize("case", list(KILL_STEPS))
def test_a_build_killed_at_each_write_step_resumes_or_is_rebuilt(
        case: str, name: str, reference: Path, tmp_path: Path) -> None:
    """A real `instrlab generate` SIGKILLed at one step of the write sequence; the next
    `instrlab generate` (same config, a real process) finishes the same bytes as an
    uninterrupted build, saying at most one line about what it found."""
    hook, nth, when, said = KILL_STEPS[case]
    path = tmp_path / name
    partial = tmp_path / f"{name}.partial"
    killed = subprocess.run([sys.executable, "-c", KILL_AT, hook, str(nth), when,
                             *GENERATE[3:], "--out", str(path)], capture_output=True,
                            text=True, timeout=180)
    assert killed.returncode == -signal.SIGKILL, (case, killed.returncode, killed.stderr)
    assert partial.exists() != (said is None)
    rerun = subprocess.run([*GENERATE, "--out", str(path)], capture_output=True, text=True,
                           timeout=180)
    assert rerun.returncode == 0 and rerun.stdout.strip() == str(path), rerun.stderr
    expected = [] if said is None else [f"instrlab: {said.format(partial=partial)}"]
    assert notes(rerun.stderr) == expected
    if said is None:  # nothing was left to do: the dead holder's lock file stays, harmless
        lock = tmp_path / f"{name}.lock"
        with open(lock) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it
        lock.unlink()
    assert_same(path, reference)

# --- (c) damaged finished datasets --------------------------------------------------------

DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "features.npy missing": (lambda d: (d / "features.npy").unlink(), "features.npy is missing"),
    "features.npy header cut": (lambda d: truncate(d / "features.npy", 100),
                                "features.npy has an unreadable header"),
    "labels.npy rows cut": (lambda d: truncate(d / "labels.npy", -12), "labels.npy has"),
    "config.json not JSON": (lambda d: truncate(d / "config.json", 30),
                             "config.json is not readable JSON"),
    "stats.json missing": (lambda d: (d / "stats.json").unlink(), "stats.json is missing"),
    "manifest cut": (lambda d: (d / "manifest.jsonl").write_text(
        "".join((d / "manifest.jsonl").read_text().splitlines(True)[:32])),
        f"manifest.jsonl has 32 whole lines, not {N}"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_is_named(case: str, reference: Path, tmp_path: Path) -> None:
    damage, problem = DAMAGE[case]
    path = Path(shutil.copytree(reference, tmp_path / reference.name))
    damage(path)
    found, detail = inspect_dataset(path, reference.name.rsplit("-", 1)[1])
    assert found == "damaged" and detail.startswith(problem), detail
    with pytest.raises(InstrlabError, match=r"is corrupt \(" + re.escape(problem)):
        open_dataset(path)


@pytest.mark.parametrize("case", ["labels.npy rows cut", "stats.json missing"])
def test_a_damaged_cached_dataset_is_built_again(case: str, config: DatasetConfig,
                                                 reference: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    damage, problem = DAMAGE[case]
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path))
    path = Path(shutil.copytree(reference, tmp_path / "datasets" / reference.name))
    damage(path)
    capsys.readouterr()
    assert generate_dataset(config, workers=1, progress=False) == path
    said = notes(capsys.readouterr().err)
    assert len(said) == 1 and said[0].startswith(
        f"instrlab: discarding the damaged cached dataset {path} ({problem}"), said
    assert said[0].endswith("; building it again")
    assert_same(path, reference)


def test_a_damaged_out_directory_is_a_one_line_error(config: DatasetConfig, reference: Path,
                                                     tmp_path: Path) -> None:
    """A user's --out is never deleted: the error names the directory, the damage and the
    fix; the command line prints it as one line and exits 2."""
    path = Path(shutil.copytree(reference, tmp_path / reference.name))
    size = (path / "labels.npy").stat().st_size
    truncate(path / "labels.npy", -12)
    message = (f"{path} is a damaged dataset (labels.npy has {size - 12} bytes, not {size}); "
               "delete it and run instrlab generate again, or choose another --out")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(InstrlabError) as err:
        generate_dataset(config, out=path, workers=1, progress=False)
    assert str(err.value) == message
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    (path / "stats.json").unlink()
    cli = subprocess.run([*GENERATE, "--out", str(path)], capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stdout == ""
    assert cli.stderr == f"instrlab: error: {message}\n"
