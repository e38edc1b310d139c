"""The main job end to end: real dataset, real training, real MLflow store in a temp dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
from conftest import tracked_store

from instrlab.cli import main
from instrlab.instruments import seed12

NAMES = seed12().names
TINY = ["--n-samples", "64", "--epochs", "2", "--batch-size", "16", "--workers", "1",
        "--no-progress", "--heldout-samples", "0"]  # held-out figures: tests/test_heldout.py


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tracked `instrlab main` run (and a second identical one) in a fresh store."""
    root = tmp_path_factory.mktemp("pipeline")
    mp, uri = tracked_store(root)
    assert main(["main", *TINY, "--run-name", "first"]) == 0
    assert main(["main", *TINY, "--run-name", "second", "--register-model", "instrlab-tiny"]) == 0
    exp = mlflow.get_experiment_by_name("instrlab-seed12")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    yield {"root": root, "uri": uri, "runs": {r.info.run_name: r for r in runs}}
    mp.undo()


def test_main_run_logs_metrics_params_and_tags(store: dict) -> None:
    run = store["runs"]["first"]
    metrics = run.data.metrics
    for key in ["val_macro_f1", "train_loss", "val_loss", "test_macro_f1", "test_micro_f1",
                "test_mAP", "train_samples_per_s", "seconds_train", "seconds_evaluate",
                "seconds_generate"]:
        assert key in metrics, key
    assert 1 <= metrics["test_true_labels_per_clip"] <= 4  # the protocol's 1..4 instruments
    assert 0 < metrics["test_labels_per_clip"] <= len(NAMES)
    for name in NAMES:
        for kind in ("f1", "precision", "recall"):
            assert 0.0 <= metrics[f"test_{kind}/{name}"] <= 1.0
    assert any(k.startswith("test_f1_by_count/") for k in metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [1, 2]
    assert run.data.params["data.n_samples"] == "64"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["model.name"] == "mel_cnn"
    assert run.data.params["train.tune_thresholds"] == "True"
    assert run.data.params["train.min_labels"] == "1"
    assert run.data.tags["instrlab.model"] == "mel_cnn"
    assert run.data.tags["instrlab.features"] == "logmel"
    assert run.inputs.dataset_inputs[0].dataset.digest == run.data.tags["instrlab.dataset_digest"]


def test_main_run_logs_artifacts(store: dict) -> None:
    client = mlflow.MlflowClient()
    run_id = store["runs"]["first"].info.run_id
    paths = {a.path for d in ("plots", "examples", "dataset", "model_meta")
             for a in client.list_artifacts(run_id, d)}
    for expected in ["plots/learning_curves.png", "plots/test_f1_vs_seed.png",
                     "plots/test_pr_curves.png", "plots/test_confusion.png",
                     "examples/spectrograms.png", "dataset/stats.json",
                     "model_meta/instrlab_model.json"]:
        assert expected in paths, expected
    wavs = [p for p in paths if p.endswith(".wav")]
    assert wavs, "example audio missing"


def test_second_run_reuses_dataset_and_generate_run(store: dict) -> None:
    first, second = store["runs"]["first"], store["runs"]["second"]
    gen = [r for r in store["runs"].values() if r.data.tags.get("instrlab.step") == "generate"]
    assert len(gen) == 1
    assert first.data.tags["instrlab.generate_run_id"] == gen[0].info.run_id
    assert second.data.tags["instrlab.generate_run_id"] == gen[0].info.run_id
    assert second.data.tags["instrlab.dataset_digest"] == first.data.tags["instrlab.dataset_digest"]


def test_same_seed_same_metrics_on_cpu(store: dict) -> None:
    a, b = store["runs"]["first"].data.metrics, store["runs"]["second"].data.metrics
    for key in ("test_macro_f1", "val_macro_f1", "train_loss", "test_mAP"):
        assert a[key] == b[key], key


def test_model_loads_back_and_predicts_a_wav(store: dict, tmp_path: Path) -> None:
    from instrlab.dataset.config import DatasetConfig
    from instrlab.dataset.render import SampleRenderer
    from instrlab.predict import load_model, predict_audio

    run_id = store["runs"]["first"].info.run_id
    loaded = load_model(run_id)
    assert loaded.meta["instrument_names"] == NAMES
    assert loaded.run_id == run_id
    renderer = SampleRenderer(DatasetConfig(n_samples=64))
    audio, _ = renderer.render_audio(renderer.score(3))
    # 12.5 s at 22.05 kHz: resampled and cut into three windows
    long = np.concatenate([audio, audio, audio[: len(audio) // 2]])[::2]
    wav = tmp_path / "clip.wav"
    sf.write(wav, long, 22050)
    from instrlab.predict import read_audio

    probs = predict_audio(loaded, read_audio(wav, 44100))
    assert probs.shape == (3, len(NAMES))
    assert np.all((probs >= 0) & (probs <= 1))


def test_predict_cli_reports_bad_files_and_predicts_the_rest(
    store: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1,
             44100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    run_id = store["runs"]["first"].info.run_id
    code = main(["predict", "--model", run_id, "--all", str(tmp_path / "missing.wav"),
                 str(empty), str(corrupt), str(text), str(good)])
    out = capsys.readouterr()
    assert code == 1
    assert "good.wav" in out.out and "probability" in out.out
    for bad in ("missing.wav: no such file", "empty.wav: file is empty", "corrupt.wav",
                "notes.txt"):
        assert bad in out.err


def test_predict_names_the_likeliest_instrument_when_none_passes(
    store: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from instrlab.predict import load_model

    run_id = store["runs"]["first"].info.run_id
    assert load_model(run_id).meta["min_labels"] == 1  # the CLI default travels with the model
    wav = tmp_path / "noise.wav"
    sf.write(wav, np.random.default_rng(1).standard_normal(44100).astype(np.float32) * 0.1,
             44100)
    capsys.readouterr()
    assert main(["predict", "--model", run_id, "--threshold", "1", str(wav)]) == 0
    out = capsys.readouterr().out
    assert out.count(" yes ") == 1 and "no instrument above threshold" not in out
    assert main(["predict", "--model", run_id, "--threshold", "1", "--min-labels", "0",
                 str(wav)]) == 0
    out = capsys.readouterr().out
    assert " yes " not in out and "no instrument above threshold" in out


def test_registered_model_loads_by_name(store: dict) -> None:
    from instrlab.predict import load_model

    loaded = load_model("instrlab-tiny")
    assert loaded.uri == "models:/instrlab-tiny/latest"
    assert loaded.run_id == store["runs"]["second"].info.run_id
    assert loaded.meta["instrument_names"] == NAMES


def run_cli(args: list[str], store: dict) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"],
           "INSTRLAB_CACHE": str(store["root"] / "cache")}
    return subprocess.run([sys.executable, "-m", "instrlab.cli", *args], capture_output=True,
                          text=True, env=env, cwd=store["root"], timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["main", "--model", "mel_cnm"], "unknown model 'mel_cnm'. Did you mean 'mel_cnn'?"),
        (["main", "--features", "logmell"], "unknown feature extractor 'logmell'"),
        (["main", "--instruments", "seed99"], "unknown instrument set 'seed99'"),
        (["main", "--epochs", "0"], "epochs"),
        (["main", "--batch-size", "0"], "batch_size"),
        (["main", "--lr", "0"], "lr"),
        (["main", "--lr", "-0.1"], "lr"),
        (["main", "--min-labels", "-1"], "min_labels = -1 must be >= 0"),
        (["main", "--min-labels", "13"], "min_labels = 13 is more than the 12 instruments"),
        (["predict", "--model", "0123456789abcdef0123456789abcdef", "--min-labels", "-2",
          "x.wav"], "--min-labels must be >= 0, got -2"),
        (["main", "--model", "seed_cnn", "--clip-seconds", "0.5"], "needs inputs of at least"),
        (["predict", "--model", "0123456789abcdef0123456789abcdef", "x.wav"],
         "cannot load model"),
        (["evaluate", "0123456789abcdef0123456789abcdef"], "cannot load model"),
        (["predict", "--model", "no-such-registered-model", "x.wav"], "cannot load model"),
    ],
)
def test_bad_input_is_one_line_error(store: dict, args: list[str], message: str) -> None:
    tiny = TINY if args[0] == "main" else []
    proc = run_cli([args[0], *tiny, *args[1:]], store)  # the bad value comes last and wins
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("instrlab: error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_tracking_server_is_one_line_error(store: dict) -> None:
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
           "INSTRLAB_CACHE": str(store["root"] / "cache")}
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "main", *TINY],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "tracking URI http://127.0.0.1:9 cannot be reached" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_experiment_script_help_lists_every_option() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "experiments" / "main.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for opt in ("--n-samples", "--instruments", "--synth", "--soundfont", "--features",
                "--model", "--epochs", "--batch-size", "--lr", "--seed"):
        assert opt in proc.stdout
