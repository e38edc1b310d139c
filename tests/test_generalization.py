"""Cross-source evaluation, multi-soundfont datasets and seeded augmentations (real audio)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from instrlab.cli import main
from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset
from instrlab.dataset.render import SampleRenderer
from instrlab.errors import InstrlabError
from instrlab.predict import load_model
from instrlab.synth.augment import AugmentConfig
from instrlab.training.metrics import binarize, macro_f1

FLUID = "FluidR3_GM.sf2"
MUSESCORE = "MuseScore_General.sf3"  # both installed by scripts/setup.sh


def test_augmentations_are_deterministic_given_the_seed() -> None:
    aug = AugmentConfig(gain_db=6, tilt_db=3, reverb_prob=1.0, noise_snr_db=(20.0, 30.0),
                        stem_eq_db=6, stem_tilt_db=3, voicing=1.0, transpose=5,
                        formant_shift=3, train_only=False)
    cfg = DatasetConfig(n_samples=8, seed=3, augment=aug)
    one, two = SampleRenderer(cfg), SampleRenderer(cfg)
    for index in (0, 5):
        a, info_a = one.render_audio(one.score(index))
        b, info_b = two.render_audio(two.score(index))
        assert np.array_equal(a, b) and info_a == info_b
        assert set(info_a["augment"]) == {"tilt_db", "rt60", "snr_db"}
    other = SampleRenderer(dataclasses.replace(cfg, seed=4))
    c, _ = other.render_audio(other.score(0))
    assert not np.array_equal(one.render_audio(one.score(0))[0], c)


def test_each_augmentation_changes_the_audio_but_not_the_labels() -> None:
    plain = SampleRenderer(DatasetConfig(n_samples=4, seed=1, augment=AugmentConfig()))
    base, _ = plain.render_audio(plain.score(2))
    for aug in (AugmentConfig(tilt_db=4, train_only=False),
                AugmentConfig(reverb_prob=1.0, train_only=False),
                AugmentConfig(noise_snr_db=(10.0, 10.0), train_only=False),
                AugmentConfig(stem_eq_db=6, train_only=False),
                AugmentConfig(voicing=1.0, train_only=False),
                AugmentConfig(transpose=5, train_only=False),
                AugmentConfig(stem_tilt_db=3, train_only=False),
                AugmentConfig(formant_shift=3, train_only=False),
                AugmentConfig(lowpass_prob=1.0, train_only=False)):
        r = SampleRenderer(DatasetConfig(n_samples=4, seed=1, augment=aug))
        assert r.score(2) == plain.score(2)
        audio, _ = r.render_audio(r.score(2))
        assert audio.shape == base.shape and not np.array_equal(audio, base)
        assert abs(np.abs(audio).max() - 10 ** (-1 / 20)) < 1e-4  # the mix's peak target


def test_formant_shift_keeps_the_written_pitch_and_timing() -> None:
    from instrlab.dataset.stems import render_shifted
    from instrlab.instruments import seed12
    from instrlab.scores import Note
    from instrlab.synth import get_synth

    synth, piano = get_synth("fluidsynth"), seed12().instruments[0]
    notes = [Note(0, 69, 90, 0.5, 1.5)]
    plain = render_shifted(synth, piano, notes, 2.0, 0, 44100)
    for k in (-3, 3):
        audio = render_shifted(synth, piano, notes, 2.0, k, 44100)
        assert audio.shape == plain.shape == (88200,) and audio.dtype == np.float32
        assert abs(np.argmax(np.abs(audio) > 1e-3) / 44100 - 0.5) < 0.005  # onset kept
        seg = audio[int(0.6 * 44100):int(1.4 * 44100)]
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        peak_hz = np.fft.rfftfreq(len(seg), 1 / 44100)[np.argmax(spectrum)]
        assert abs(peak_hz - 440.0) < 3  # A4 still sounds as A4
        assert not np.allclose(audio, plain, atol=1e-3)  # but from another sample's body


def test_lowpass_augmentation_removes_what_lies_above_its_cutoff() -> None:
    aug = AugmentConfig(lowpass_prob=1.0, lowpass_hz=(2000.0, 2000.0), train_only=False)
    clean = SampleRenderer(DatasetConfig(n_samples=4, seed=1, augment=AugmentConfig()))
    cut = SampleRenderer(DatasetConfig(n_samples=4, seed=1, augment=aug))
    band = np.fft.rfftfreq(5 * 44100, 1 / 44100) > 4000  # an octave above the cutoff
    for i in range(3):
        a, _ = clean.render_audio(clean.score(i))
        b, info = cut.render_audio(cut.score(i))
        assert info["augment"] == {"lowpass_hz": 2000.0}
        high_a = np.sum(np.abs(np.fft.rfft(a))[band] ** 2) / np.sum(a**2)
        high_b = np.sum(np.abs(np.fft.rfft(b))[band] ** 2) / np.sum(b**2)
        assert high_a > 0 and high_b < high_a * 1e-4  # at least 40 dB less energy up there


def test_gain_augmentation_spreads_stem_gains() -> None:
    r = SampleRenderer(DatasetConfig(n_samples=40, seed=2,
                                     augment=AugmentConfig(gain_db=6, train_only=False)))
    plain = SampleRenderer(DatasetConfig(n_samples=40, seed=2, augment=AugmentConfig()))
    spreads = []
    for i in range(6):
        _, info = r.render_audio(r.score(i))
        _, base = plain.render_audio(plain.score(i))
        extra = np.subtract(info["stem_gain_db"], base["stem_gain_db"])
        assert np.all(np.abs(extra) <= 6 + 1e-6)
        spreads.append(np.abs(extra).max())
    assert max(spreads) > 1.0


def test_only_training_clips_are_augmented_and_prob_picks_a_seeded_share() -> None:
    from instrlab.dataset import split_indices

    n, seed = 40, 2
    split = split_indices(n, seed)
    plain = SampleRenderer(DatasetConfig(n_samples=n, seed=seed, augment=AugmentConfig()))
    every = SampleRenderer(DatasetConfig(n_samples=n, seed=seed,
                                         augment=AugmentConfig(stem_eq_db=6)))
    half = SampleRenderer(DatasetConfig(n_samples=n, seed=seed,
                                        augment=AugmentConfig(stem_eq_db=6, prob=0.5)))
    for i in (*split["val"][:2], *split["test"][:2]):
        assert not every.augments(every.score(int(i)))
        assert np.array_equal(every.render_audio(every.score(int(i)))[0],
                              plain.render_audio(plain.score(int(i)))[0])
    train = [int(i) for i in split["train"]]
    assert all(every.augments(every.score(i)) for i in train)
    picked = [half.augments(half.score(i)) for i in train]
    assert 0.25 < np.mean(picked) < 0.75
    again = SampleRenderer(half.cfg)
    assert picked == [again.augments(again.score(i)) for i in train]


@pytest.mark.parametrize("bad", [AugmentConfig(gain_db=-1), AugmentConfig(reverb_prob=1.5),
                                 AugmentConfig(stem_eq_db=-1), AugmentConfig(prob=2.0),
                                 AugmentConfig(voicing=1.5), AugmentConfig(transpose=30),
                                 AugmentConfig(stem_tilt_db=20),
                                 AugmentConfig(formant_shift=13),
                                 AugmentConfig(reverb_seconds=(2.0, 1.0)),
                                 AugmentConfig(noise_snr_db=(30.0, 10.0)),
                                 AugmentConfig(lowpass_prob=-0.5),
                                 AugmentConfig(lowpass_hz=(8000.0, 30000.0))])
def test_bad_augmentation_is_an_error(bad: AugmentConfig) -> None:
    with pytest.raises(InstrlabError, match="augment"):
        DatasetConfig(n_samples=4, augment=bad)


def test_multi_soundfont_dataset_draws_from_both(tmp_path: Path) -> None:
    for per in ("sample", "instrument"):
        cfg = DatasetConfig(n_samples=24, seed=5, extra_soundfonts=(MUSESCORE,),
                            soundfont_per=per)
        path = generate_dataset(cfg, out=tmp_path / per, workers=1, progress=False)
        ds = open_dataset(path)
        used = [rec["soundfonts"] for rec in ds.manifest()]
        flat = {sf for rec in used for sf in rec}
        assert flat == {"FluidR3_GM.sf2", "MuseScore_General_Lite.sf3"}, flat
        if per == "sample":
            assert all(len(set(rec)) == 1 for rec in used)
        else:
            assert any(len(set(rec)) > 1 for rec in used)
        synths = ds.meta["identity"]["synth"]
        assert [s["soundfont"] for s in synths] == ["FluidR3_GM.sf2",
                                                    "MuseScore_General_Lite.sf3"]
    single = generate_dataset(DatasetConfig(n_samples=24, seed=5), out=tmp_path / "one",
                              workers=1, progress=False)
    assert open_dataset(single).digest != open_dataset(tmp_path / "sample").digest


def test_cross_source_evaluation_links_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # runs this short end before the default 10 s sample: sample every 0.5 s instead
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    assert main(["train", "--n-samples", "48", "--epochs", "1", "--batch-size", "16",
                 "--workers", "1", "--no-progress", "--heldout-samples", "0",
                 "--run-name", "trained"]) == 0
    trained = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list",
                                 filter_string="attributes.run_name = 'trained'")[0]
    rid = trained.info.run_id
    assert main(["evaluate", rid, "--n-samples", "24", "--workers", "1", "--no-progress",
                 "--eval-soundfont", FLUID, "--eval-soundfont", MUSESCORE,
                 "--run-name", "report"]) == 0
    runs = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list")
    evals = [r for r in runs if r.data.tags.get("instrlab.step") == "evaluate"]
    assert len(evals) == 2
    assert {r.data.tags["instrlab.trained_run_id"] for r in evals} == {rid}
    assert {r.data.tags["instrlab.soundfont"] for r in evals} == {
        "FluidR3_GM.sf2", "MuseScore_General_Lite.sf3"}
    digests = {r.data.tags["instrlab.dataset_digest"] for r in evals}
    assert len(digests) == 2  # two datasets, rendered with two soundfonts
    for r in [trained, *evals]:  # train and evaluate runs log system metrics
        assert "system/cpu_utilization_percentage" in r.data.metrics, r.info.run_name
    meta = load_model(rid).meta
    for r in evals:
        assert 0.0 <= r.data.metrics["test_macro_f1"] <= 1.0
        assert r.data.params["eval.rows"] == "all"
        # the model's own decision rule (thresholds, at least min_labels) scores the clips
        preds = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=r.info.run_id, artifact_path="predictions/test.json")).read_text())
        digest = r.data.tags["instrlab.dataset_digest"]
        labels = open_dataset(next((tmp_path / "cache").glob(f"**/*-{digest}"))).labels
        pred = binarize(np.array(preds["probs"]), meta["thresholds"], meta["min_labels"])
        assert pred.sum(axis=1).min() >= 1
        assert r.data.metrics["test_macro_f1"] == pytest.approx(
            macro_f1(labels[preds["index"]], pred), abs=1e-6)
    report = next(r for r in runs if r.info.run_name == "report")
    assert report.data.tags["instrlab.step"] == "generalization"
    assert {"macro_f1/FluidR3_GM.sf2", "macro_f1/MuseScore_General.sf3"} <= set(
        report.data.metrics)
    local = mlflow.artifacts.download_artifacts(
        run_id=report.info.run_id, artifact_path="generalization/report.json")
    body = json.loads(Path(local).read_text())
    assert set(body["f1"]) == {"FluidR3_GM.sf2", "MuseScore_General.sf3"}
    art = {a.path for a in mlflow.MlflowClient().list_artifacts(report.info.run_id,
                                                                  "generalization")}
    assert "generalization/report.png" in art
    # a dataset the model cannot read is a one-line error, not a crash
    capsys.readouterr()
    assert main(["evaluate", rid, "--n-samples", "8", "--workers", "1", "--no-progress",
                 "--features", "seed_image"]) == 2
    assert "use --features logmel" in capsys.readouterr().err


def test_evaluate_reads_clips_with_the_models_features(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from instrlab.models.factory import ModelConfig
    from instrlab.pipeline import prepare_dataset, train_and_evaluate
    from instrlab.tracking.runs import use_experiment
    from instrlab.training import TrainConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    use_experiment("seed12")
    with mlflow.start_run(run_name="n_mels 32") as run:  # as a tuned model may have them
        ds = prepare_dataset(DatasetConfig(n_samples=24, feature_params={"n_mels": 32}),
                             workers=1, progress=False)
        train_and_evaluate(ds, ModelConfig(), TrainConfig(epochs=1, batch_size=8),
                           n_examples=0, progress=False)
    assert main(["evaluate", run.info.run_id, "--n-samples", "8", "--workers", "1",
                 "--no-progress", "--run-name", "eval"]) == 0
    ev = next(r for r in mlflow.search_runs(experiment_names=["instrlab-seed12"],
                                             output_format="list")
              if r.data.tags.get("instrlab.step") == "evaluate")
    assert open_dataset(next((tmp_path / "cache").glob(
        f"**/*-{ev.data.tags['instrlab.dataset_digest']}"))).features.shape[1] == 32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--extra-soundfont", "/no/such/font.sf2"], "soundfont '/no/such/font.sf2' not found"),
        (["--augment-gain-db", "-1"], "augment gain_db must be in 0..40"),
        (["--augment-reverb-prob", "1.5"], "augment reverb_prob must be in 0..1"),
        (["--augment-noise-snr", "40", "10"], "augment noise_snr_db must satisfy"),
        (["--augment-stem-eq-db", "50"], "augment stem_eq_db must be in 0..40"),
        (["--augment-stem-tilt-db", "-2"], "augment stem_tilt_db must be in 0..12"),
        (["--augment-formant-shift", "13"], "augment formant_shift must be in 0..12"),
        (["--augment-stem-eq-knots", "1"], "augment stem_eq_knots must be in 2..64"),
        (["train", "--spec-eq-knots", "1"], "spec augment: eq_knots = 1 must be in 2..64"),
        (["--augment-voicing", "2"], "augment voicing must be in 0..1"),
        (["--augment-transpose", "30"], "augment transpose must be in 0..24"),
        (["--augment-prob", "1.2"], "augment prob must be in 0..1"),
        (["train", "--spec-eq-db", "-3"], "spec augment: eq_db = -3.0 must be in 0..40"),
        (["train", "--spec-freq-masks", "20"], "spec augment: freq_masks = 20 must be in"),
        (["train", "--spec-time-masks", "-1"], "spec augment: time_masks = -1 must be in"),
        (["train", "--spec-shift-bins", "99"], "spec augment: shift_bins = 99 must be in"),
        (["train", "--mixup-prob", "2"], "spec augment: mixup_prob = 2.0 must be in 0..1"),
        (["train", "--spec-style-mix", "1.5"], "spec augment: style_mix_prob = 1.5 must be"),
        (["train", "--ema-decay", "1"], "ema_decay = 1.0 must be in [0, 1)"),
    ],
)
def test_bad_robustness_options_are_one_line_errors(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    import os
    import subprocess
    import sys

    command, args = (args[0], args[1:]) if args[0] == "train" else ("generate", args)
    out = ["--out", str(tmp_path / "ds")] if command == "generate" else []
    env = {**os.environ, "INSTRLAB_CACHE": str(tmp_path / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", command, "--n-samples",
                           "4", *out, *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("instrlab: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "ds").exists() and not (tmp_path / "cache").exists()


def test_voicing_needs_a_synth_that_takes_generators(isolated: Path) -> None:
    from instrlab.registry import synths
    from instrlab.synth import FluidSynthBackend

    class NoGenerators:
        """A backend whose render_stem has no ``generators`` parameter."""

        def __init__(self, **params: object) -> None:
            self.inner = FluidSynthBackend(**params)  # type: ignore[arg-type]
            self.sample_rate = self.inner.sample_rate

        def render_stem(self, instrument, notes, seconds):  # noqa: ANN001, ANN201
            return self.inner.render_stem(instrument, notes, seconds)

        def identity(self) -> dict:
            return {**self.inner.identity(), "backend": "no_generators"}

    synths.register("no_generators", NoGenerators)
    SampleRenderer(DatasetConfig(n_samples=4, synth="no_generators"))  # fine without voicing
    with pytest.raises(InstrlabError, match="cannot vary the voicing.*--augment-voicing 0"):
        SampleRenderer(DatasetConfig(n_samples=4, synth="no_generators",
                                     augment=AugmentConfig(voicing=0.5)))
