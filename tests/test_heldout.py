"""Held-out figures of ``instrlab main``: real (tiny) training, rendering and MLflow store."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import mlflow
import pytest
from conftest import tracked_store

from instrlab.cli import main
from instrlab.config import EvalConfig, evaluation_data, on_soundfont
from instrlab.dataset import DatasetConfig
from instrlab.scores import ScoreConfig

TINY = ["--n-samples", "48", "--epochs", "1", "--batch-size", "16", "--preset", "plain",
        "--model-param", "width=8", "--model-param", "n_blocks=2", "--workers", "1",
        "--no-progress"]
HELDOUT_KEYS = {"heldout_macro_f1_octave_down", "heldout_macro_f1_octave_up",
                "heldout_macro_f1_music", "heldout_macro_f1/TimGM6mb",
                "heldout_macro_f1/TimGM6mb/music", "heldout_worst_f1/TimGM6mb"}


def test_on_soundfont_renders_with_that_soundfont_alone() -> None:
    mixed = DatasetConfig(soundfont="FluidR3_GM.sf2", soundfont_per="instrument",
                          extra_soundfonts=("TimGM6mb.sf2",),
                          soundfont_exclude=(("violin", "TimGM6mb.sf2"),))
    alone = on_soundfont(mixed, "MuseScore_General.sf3")
    assert (alone.soundfont, alone.extra_soundfonts, alone.soundfont_per,
            alone.soundfont_exclude) == ("MuseScore_General.sf3", (), "sample", ())
    assert on_soundfont(mixed, None).soundfont is None  # the default soundfont
    assert alone.score == mixed.score and alone.augment == mixed.augment


def test_held_out_figures_are_clean_seed_1_clips_of_the_protocol() -> None:
    data = DatasetConfig(soundfont="FluidR3_GM.sf2", extra_soundfonts=("TimGM6mb.sf2",),
                         score=ScoreConfig(register_share=0.5))  # held out: no register
    protocol = dataclasses.replace(data.score, register_share=0.0)
    cfg = EvalConfig(samples=16, soundfonts=("sf_GMbank.sf2",))
    down = cfg.octave_data(data, -1)
    assert down == dataclasses.replace(
        on_soundfont(evaluation_data(data), "FluidR3_GM.sf2"), n_samples=16,
        score=dataclasses.replace(protocol, pitch_shift=-12))
    assert (down.seed, down.augment.active, down.extra_soundfonts, down.soundfont_per,
            down.score.register_share) == (1, False, (), "sample", 0.0)
    assert cfg.octave_data(data, 2).score.pitch_shift == 24
    other = cfg.soundfont_data(data, "sf_GMbank.sf2")
    assert (other.soundfont, other.extra_soundfonts, other.n_samples, other.seed) == (
        "sf_GMbank.sf2", (), 16, 1)
    assert other.score == protocol and not other.augment.active


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two tiny `instrlab main` runs: with held-out figures, and with them switched off."""
    root = tmp_path_factory.mktemp("heldout")
    mp, uri = tracked_store(root)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["main", *TINY, "--heldout-samples", "8", "--heldout-soundfont",
                     "TimGM6mb.sf2", "--run-name", "with"]) == 0
        assert main(["main", *TINY, "--set", "eval.samples=0", "--run-name", "without"]) == 0
    exp = mlflow.get_experiment_by_name("instrlab-seed12")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    yield {"runs": runs, "named": {r.info.run_name: r for r in runs}, "stdout": out.getvalue()}
    mp.undo()


def test_main_logs_held_out_figures_as_top_level_metrics(store: dict) -> None:
    run = store["named"]["with"]
    m = run.data.metrics
    assert HELDOUT_KEYS <= set(m)
    assert all(0.0 <= m[k] <= 1.0 for k in HELDOUT_KEYS)
    assert m["heldout_worst_f1/TimGM6mb"] <= m["heldout_macro_f1/TimGM6mb"]
    assert "test_macro_f1" in m
    assert (run.data.params["eval.samples"], run.data.params["eval.octaves"]) == ("8", "(-1, 1)")
    assert "TimGM6mb.sf2" in run.data.params["eval.soundfonts"]
    children = {r.data.tags["instrlab.heldout"]: r for r in store["runs"]
                if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
                and "instrlab.heldout" in r.data.tags}
    assert set(children) == {"octave_down", "octave_up", "TimGM6mb", "music",
                             "TimGM6mb, music"}
    for name, key in [("octave_down", "heldout_macro_f1_octave_down"),
                      ("octave_up", "heldout_macro_f1_octave_up"),
                      ("music", "heldout_macro_f1_music"),
                      ("TimGM6mb", "heldout_macro_f1/TimGM6mb"),
                      ("TimGM6mb, music", "heldout_macro_f1/TimGM6mb/music")]:
        child = children[name]
        assert child.data.metrics["test_macro_f1"] == m[key]
        where = name.replace(", ", "/")  # the counts of the same clips, under the figure's name
        assert m[f"heldout_labels_per_clip/{where}"] == child.data.metrics["test_labels_per_clip"]
        assert (m[f"heldout_true_labels_per_clip/{where}"]
                == child.data.metrics["test_true_labels_per_clip"] > 0)
        assert child.data.tags["instrlab.trained_run_id"] == run.info.run_id
        assert (child.data.params["data.n_samples"], child.data.params["data.seed"]) == (
            "8", "1")
    assert children["octave_down"].data.params["data.score.pitch_shift"] == "-12"
    assert children["octave_up"].data.params["data.score.pitch_shift"] == "12"
    assert children["TimGM6mb"].data.tags["instrlab.soundfont"] == "TimGM6mb.sf2"
    for name, soundfont in [("music", "FluidR3_GM.sf2"), ("TimGM6mb, music", "TimGM6mb.sf2")]:
        params = children[name].data.params  # every clip real music: no protocol test split
        assert params["data.score.generators"] == "(('corpus', 1.0),)"
        assert params["data.test_protocol"] == "False"
        assert children[name].data.tags["instrlab.soundfont"] == soundfont
    assert children["TimGM6mb"].data.params["data.score.generators"] == (
        "(('seed_random', 1.0),)")
    line = next(x for x in store["stdout"].splitlines() if x.startswith("held-out macro F1"))
    assert "octave_down" in line and "TimGM6mb" in line and "worst instrument F1" in line
    assert "music" in line


def test_eval_samples_0_logs_no_held_out_figure(store: dict) -> None:
    run = store["named"]["without"]
    assert "test_macro_f1" in run.data.metrics
    assert not [k for k in run.data.metrics if k.startswith("heldout")]
    assert run.data.params["eval.samples"] == "0"
    assert not [r for r in store["runs"]
                if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
                and "instrlab.heldout" in r.data.tags]


@pytest.mark.parametrize(("args", "message"), [
    (["--heldout-octaves", "0"],
     "eval.octaves (--heldout-octaves) must be non-zero whole octaves in -3..3, got [0]"),
    (["--heldout-octaves", "-1", "4"], "must be non-zero whole octaves in -3..3, got [-1, 4]"),
    (["--heldout-soundfont", "Nope.sf2"], "--heldout-soundfont: soundfont 'Nope.sf2' not found"),
    (["--heldout-samples", "-1"], "eval.samples (--heldout-samples) must be in 0..1000000"),
    (["--set", "eval.samples=-1"], "eval.samples (--heldout-samples) must be in 0..1000000"),
    (["--heldout-soundfont", "a/TimGM6mb.sf2", "--heldout-soundfont", "TimGM6mb.sf2"],
     "name a file stem twice"),
    (["--heldout-music", "corpuss"], "--heldout-music: unknown score generator 'corpuss'"),
    (["--score-generators", "seed_random=1", "corpus=1"],
     "score generator 'corpus' is for evaluation only"),
])
def test_bad_held_out_settings_fail_before_any_work(
        args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["main", *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("instrlab: error: ") and err.count("\n") == 1, err
    assert message in err
    assert list(tmp_path.iterdir()) == []  # no dataset, no store
