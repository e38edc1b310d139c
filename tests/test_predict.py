"""`instrlab predict` on real files (issue 13, items 8-12 and --threshold).

A real tiny training run in a real SQLite MLflow store; the CLI runs in subprocesses.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
from conftest import tracked_store
from test_model_safety import TINY, one_error_line, printed_probabilities
from test_pipeline import run_cli

from instrlab.cli import main
from instrlab.errors import InstrlabError
from instrlab.predict import load_model, predict_audio, predict_file, read_audio


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny training run, its loaded model, and WAV files at two sample rates."""
    root = tmp_path_factory.mktemp("predict")
    mp, uri = tracked_store(root)
    assert main(["train", *TINY, "--run-name", "tiny"]) == 0
    run = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list")[0]
    loaded = load_model(run.info.run_id)
    rate, clip = loaded.meta["sample_rate"], loaded.meta["clip_seconds"]
    rng = np.random.default_rng(1)
    files: dict = {"seconds": {"native": 3.3 * clip, "other": 2.5 * clip}}
    for name, sr in (("native", rate), ("other", 22050)):
        seconds = files["seconds"][name]
        t = np.arange(int(sr * seconds)) / sr
        audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
        files[name] = root / f"{name}.wav"
        sf.write(files[name], np.stack([audio, audio * 0.5], axis=1).astype(np.float32), sr,
                 subtype="PCM_16")
    yield {"root": root, "uri": uri, "run_id": run.info.run_id, "loaded": loaded, **files}
    mp.undo()


def whole_file(store: dict, path: Path) -> np.ndarray:
    """Per-window probabilities the old way: the whole file decoded, then windowed."""
    loaded = store["loaded"]
    return predict_audio(loaded, read_audio(path, loaded.meta["sample_rate"]))


def test_streaming_matches_the_whole_file_path(store: dict) -> None:
    probs, seconds = predict_file(store["loaded"], store["native"], batch=2)  # several batches
    expected = whole_file(store, store["native"])
    assert probs.shape == expected.shape and len(probs) == 4
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert seconds == pytest.approx(store["seconds"]["native"], abs=1e-3)


def test_a_file_at_another_sample_rate(store: dict) -> None:
    probs, seconds = predict_file(store["loaded"], store["other"])
    expected = whole_file(store, store["other"])
    assert probs.shape == expected.shape and len(probs) == 3
    np.testing.assert_allclose(probs, expected, atol=0.02)  # windows resampled one by one
    assert seconds == pytest.approx(store["seconds"]["other"], abs=1e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e30])
def test_non_finite_audio_is_rejected(store: dict, tmp_path: Path, bad: float) -> None:
    audio = np.zeros(44100, dtype=np.float32)
    audio[30000] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 44100, subtype="FLOAT")
    for read in (lambda: predict_file(store["loaded"], path),
                 lambda: read_audio(path, 44100)):
        with pytest.raises(InstrlabError, match="non-finite or absurdly large") as exc:
            read()
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_table_json_and_csv_agree_and_errors_are_one_line(store: dict) -> None:
    files = [str(store["native"]), str(store["other"])]
    table = run_cli(["predict", "--model", store["run_id"], "--all", files[0]], store)
    assert table.returncode == 0 and table.stderr == "", table.stderr
    shown = printed_probabilities(table.stdout)

    bad = store["root"] / "nan.wav"  # a failing file: one error line, the others still print
    sf.write(bad, np.full(4410, np.nan, dtype=np.float32), 44100, subtype="FLOAT")
    proc = run_cli(["predict", "--model", store["run_id"], "--format", "json", files[0],
                    str(bad), files[1]], store)
    assert proc.returncode == 1
    one_error_line(proc.stderr, str(bad), "non-finite")
    records = json.loads(proc.stdout)
    assert [r["path"] for r in records] == files
    first = records[0]
    assert first["duration_s"] == pytest.approx(store["seconds"]["native"], abs=0.01)
    assert first["windows"] == 4
    assert set(first["instruments"]) == set(shown)
    for name, p in shown.items():
        assert first["instruments"][name]["probability"] == pytest.approx(p, abs=0.0006)
        assert isinstance(first["instruments"][name]["plays"], bool)

    proc = run_cli(["predict", "--model", store["run_id"], "--format", "csv", *files], store)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["path"] for r in rows] == files
    for name, p in shown.items():
        assert float(rows[0][f"{name}_prob"]) == pytest.approx(p, abs=0.0006)
        assert rows[0][f"{name}_plays"] == str(int(first["instruments"][name]["plays"]))


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1.5"])
def test_bad_thresholds_are_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", "--model", "0123456789abcdef0123456789abcdef", "--threshold", value,
            "x.wav"]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "--threshold must be a number in (0, 1]")


def test_unreachable_tracking_uri_fails_fast(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "predict", "--model",
                           "0123456789abcdef0123456789abcdef", "x.wav"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert time.monotonic() - start < 20
    assert proc.returncode == 2
    one_error_line(proc.stderr, "http://127.0.0.1:9")


def test_a_tracking_server_that_never_answers_fails_fast(tmp_path: Path) -> None:
    """Item 10, the other way to be unreachable: the port accepts connections (this
    test's thread holds them open) and never sends a byte back. Timed from the first
    connection, so that a slow start-up on a busy machine does not count."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[tuple[float, socket.socket]] = []

    def accept() -> None:
        try:
            while True:
                conn = server.accept()[0]
                held.append((time.monotonic(), conn))
        except OSError:  # the socket was shut down: the test is over
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_TRACKING_URI"] = uri
    try:
        proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "predict", "--model",
                               "0123456789abcdef0123456789abcdef", "x.wav"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        end = time.monotonic()
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        server.close()
        thread.join(5)
        for _, conn in held:
            conn.close()
    assert held, "predict never connected to the silent server"
    assert proc.returncode == 2
    one_error_line(proc.stderr, uri, "cannot be reached")
    hung = end - held[0][0]
    assert hung < 15, f"predict waited {hung:.0f} s on a server that never answers"


def write_quiet_wav(path: Path, minutes: float, rate: int) -> None:
    """Low noise, written a minute at a time (the test's own memory stays small)."""
    rng = np.random.default_rng(2)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for start in range(0, int(minutes * 60 * rate), 60 * rate):
            n = min(60 * rate, int(minutes * 60 * rate) - start)
            f.write((0.01 * rng.standard_normal(n)).astype(np.float32))


# `python -m instrlab.cli ARGS`, then the process's own peak RSS (VmHWM, kB) into a file.
# Not ru_maxrss: a child's carries over the RSS of the process it was forked from (pytest).
PEAK_RSS = ("import sys\nfrom instrlab.cli import main\nrc = main(sys.argv[2:])\n"
            "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "open(sys.argv[1], 'w').write(hwm.split()[1])\nsys.exit(rc)\n")


def test_predict_memory_is_flat_in_the_file_length(store: dict, tmp_path: Path) -> None:
    """Item 8: `instrlab predict` on 1 and 20 minutes of audio, each in its own process,
    whose peak RSS must not grow with the file (and stay under 1 GB)."""
    rate = store["loaded"].meta["sample_rate"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"],
           "INSTRLAB_CACHE": str(store["root"] / "cache")}
    procs = {}
    for minutes in (1, 20):
        wav = tmp_path / f"{minutes}min.wav"
        write_quiet_wav(wav, minutes, rate)
        procs[minutes] = subprocess.Popen(  # both at once: the start-up cost dominates
            [sys.executable, "-c", PEAK_RSS, str(tmp_path / f"{minutes}.kb"), "predict",
             "--model", store["run_id"], "--format", "json", str(wav)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=store["root"])
    peak_mb = {}
    try:
        for minutes, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0 and err == "", err
            assert json.loads(out)[0]["duration_s"] == pytest.approx(minutes * 60, abs=0.01)
            peak_mb[minutes] = int((tmp_path / f"{minutes}.kb").read_text()) / 1024
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert peak_mb[20] <= 1.15 * peak_mb[1] + 40, peak_mb
    assert peak_mb[20] < 1024, peak_mb
