"""Leave-one-family-out end to end: real soundfonts, real (tiny) training, a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import with_corpus

from instrlab.dataset import DatasetConfig, open_dataset
from instrlab.errors import InstrlabError
from instrlab.folds.config import FoldsConfig
from instrlab.folds.run import plan_folds
from instrlab.instruments import seed12
from instrlab.synth.augment import AugmentConfig
from instrlab.synth.soundfonts import find_soundfont

SOUNDFONTS = ["FluidR3_GM.sf2", "MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2"]
RECORDED = FoldsConfig(soundfonts=tuple(SOUNDFONTS))  # the four recorded families
REPO = Path(__file__).resolve().parents[1]
MUSESCORE_OWN = {"acoustic_grand_piano", "square_wave_lead", "new_age_pad"}


def test_folds_leave_out_every_preset_of_the_held_out_family() -> None:
    folds = {f.name: f for f in plan_folds(seed12(), RECORDED)}
    assert set(folds) == {"TimGM6mb", "FluidR3_GM"}
    tim = folds["TimGM6mb"]
    assert tim.held_out == ("TimGM6mb.sf2", "sf_GMbank.sf2")
    assert tim.train == ("FluidR3_GM.sf2", "MuseScore_General.sf3") and tim.exclude == ()
    fluid = folds["FluidR3_GM"]
    assert fluid.train == ("MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2")
    # MuseScore's presets that are FluidR3's recordings are out; its own three stay in
    assert {sf for _, sf in fluid.exclude} == {"MuseScore_General.sf3"}
    assert {inst for inst, _ in fluid.exclude} == set(seed12().names) - MUSESCORE_OWN


def test_fold_data_renders_no_excluded_preset(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from instrlab.config import ExperimentConfig
    from instrlab.dataset import generate_dataset
    from instrlab.folds.run import fold_data

    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path))
    fold = next(f for f in plan_folds(seed12(), RECORDED) if f.name == "FluidR3_GM")
    base = ExperimentConfig(data=DatasetConfig(n_samples=48, seed=2, augment=AugmentConfig()))
    ds = open_dataset(generate_dataset(fold_data(base, fold), workers=1, progress=False))
    file_name = {sf: find_soundfont(sf).resolve().name for sf in SOUNDFONTS}  # as logged
    excluded = {(inst, file_name[sf]) for inst, sf in fold.exclude}
    used = set()
    for row in ds.manifest():
        for inst, sf in zip(row["instruments"], row["soundfonts"]):
            assert (inst, sf) not in excluded, (inst, sf)
            used.add(sf)
    assert used == {file_name[sf] for sf in fold.train}  # every training soundfont is drawn


@pytest.mark.parametrize(("cfg", "message"), [
    ({"soundfonts": tuple(SOUNDFONTS), "hold_out": ("Nope.sf2",)},
     "'Nope.sf2' is not one of the benchmark's soundfonts"),
    ({"soundfonts": ("FluidR3_GM.sf2",), "hold_out": ("FluidR3_GM.sf2",)},
     "at least two different soundfonts: name them with --soundfonts"),
    ({"eval_samples": 0}, "--eval-samples must be in 1..1000000"),
    ({"octaves": (0,)}, r"--octaves must be non-zero whole octaves in -3..3, got \[0\]"),
    ({"octaves": (-1, 4)}, r"--octaves must be non-zero whole octaves in -3..3, got \[-1, 4\]"),
    ({"train_seeds": (1, 1)}, r"--train-seeds must be distinct whole numbers in 0..4294967295, "
                              r"got \[1, 1\]"),
    ({"train_seeds": (0, -2)}, r"--train-seeds must be distinct whole numbers"),
])
def test_bad_folds_are_one_line_errors(cfg: dict, message: str) -> None:
    with pytest.raises(InstrlabError, match=message):
        FoldsConfig(**cfg)


def test_train_seeds_that_are_not_numbers_are_one_line_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "folds", "--train-seeds", "0",
                           "one"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--train-seeds takes whole numbers such as 0 1 2, got 0 one" in proc.stderr


def test_octaves_that_are_not_numbers_are_one_line_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "folds", "--octaves", "up"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("instrlab: error: --octaves takes whole numbers such as -1 1, "
                                   "got up")


def test_an_unknown_music_generator_fails_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "INSTRLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "folds", "--music", "corpuss",
                           "--n-samples", "32", "--epochs", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown score generator 'corpuss'" in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []  # no dataset, no store


def test_a_fold_with_nothing_left_to_train_on_is_an_error() -> None:
    cfg = FoldsConfig(soundfonts=("FluidR3_GM.sf2", "MuseScore_General.sf3"),
                      hold_out=("FluidR3_GM.sf2",))
    with pytest.raises(InstrlabError, match="nothing left to train nylon_acoustic_guitar on"):
        plan_folds(seed12(), cfg)


def test_two_fold_benchmark_end_to_end(tmp_path: Path, corpus_cache: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "INSTRLAB_CACHE": str(with_corpus(corpus_cache, tmp_path / "cache"))}
    proc = subprocess.run(
        [sys.executable, "-m", "instrlab.cli", "folds", "--soundfonts", *SOUNDFONTS,
         "--hold-out", "TimGM6mb.sf2+sf_GMbank.sf2", "--hold-out", "FluidR3_GM.sf2",
         "--eval-samples", "8", "--octaves", "-1", "--preset", "plain", "--n-samples", "32",
         "--epochs", "1", "--batch-size", "8", "--workers", "1", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name("instrlab-seed12")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parent = next(r for r in runs if r.data.tags.get("instrlab.step") == "folds")
    folds = {r.data.tags["instrlab.fold"]: r for r in runs
             if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(folds) == {"TimGM6mb", "FluidR3_GM"}
    m = parent.data.metrics
    p = parent.data.params
    assert "folds.eval_samples" in p and "data.n_samples" in p
    assert not [k for k in p if k.startswith("eval.")]  # main's held-out settings: unused here
    for name in ("TimGM6mb", "FluidR3_GM"):
        fold = folds[name].data.metrics
        assert m[f"heldout_macro_f1/{name}"] == fold["heldout_macro_f1"]
        assert 0.0 <= fold["heldout_macro_f1"] <= 1.0
        assert {f"heldout_f1/{n}" for n in seed12().names} <= set(fold)
        assert "test_macro_f1" in fold  # the in-family test split, as in a main run
    assert m["heldout_macro_f1_mean"] == pytest.approx(
        (m["heldout_macro_f1/TimGM6mb"] + m["heldout_macro_f1/FluidR3_GM"]) / 2)
    assert "heldout_macro_f1/sf_GMbank" in folds["TimGM6mb"].data.metrics
    by_name = {r.info.run_name: r.data.metrics for r in runs}
    timgm = by_name["evaluate fold TimGM6mb on TimGM6mb.sf2"]
    timgm_music = by_name["evaluate fold TimGM6mb on TimGM6mb.sf2, music"]
    assert folds["TimGM6mb"].data.metrics["heldout_map"] == timgm["test_mAP"]  # ranking
    assert m["heldout_map/TimGM6mb"] == timgm["test_mAP"]
    assert m["heldout_map_music/TimGM6mb"] == timgm_music["test_mAP"]
    assert (folds["TimGM6mb"].data.metrics["heldout_map/sf_GMbank/octave_down"]
            == by_name["evaluate fold TimGM6mb on sf_GMbank.sf2, octave_down"]["test_mAP"])
    evals = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in
             {f.info.run_id for f in folds.values()}]
    assert len(evals) == 9  # TimGM6mb, sf_GMbank, FluidR3_GM; each an octave down, and music
    assert "heldout_macro_f1_octave_down" in folds["FluidR3_GM"].data.metrics
    assert "heldout_macro_f1_octave_down/FluidR3_GM" in m
    assert "heldout_macro_f1/sf_GMbank/octave_down" in folds["TimGM6mb"].data.metrics
    for name in ("TimGM6mb", "FluidR3_GM"):  # real music on each held-out family
        fold = folds[name].data.metrics
        assert fold["heldout_macro_f1_music"] == fold[f"heldout_macro_f1/{name}/music"]
        assert m[f"heldout_macro_f1_music/{name}"] == fold["heldout_macro_f1_music"]
    assert "heldout_macro_f1/sf_GMbank/music" in folds["TimGM6mb"].data.metrics
    for r in evals:  # instruments named and present per clip of each held-out figure
        name = r.data.tags["instrlab.fold"]
        where = r.info.run_name.split(" on ", 1)[1].replace(".sf2, ", "/").removesuffix(".sf2")
        fold = folds[name].data.metrics
        assert fold[f"heldout_labels_per_clip/{where}"] == r.data.metrics["test_labels_per_clip"]
        assert (fold[f"heldout_true_labels_per_clip/{where}"]
                == r.data.metrics["test_true_labels_per_clip"] > 0)
    music = [r for r in evals if r.info.run_name.endswith(", music")]
    assert len(music) == 3 and all(
        r.data.params["data.score.generators"] == "(('corpus', 1.0),)" for r in music)
    client = mlflow.MlflowClient()
    report = json.loads(Path(client.download_artifacts(parent.info.run_id, "folds/report.json",
                                                       str(tmp_path))).read_text())
    assert set(report) == {"TimGM6mb", "FluidR3_GM"}
    assert report["TimGM6mb"]["map_music"] == timgm_music["test_mAP"]
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "folds")}
    assert {"folds/report.json", "folds/report.md", "folds/report.png"} <= arts
    assert "held-out macro F1" in proc.stdout
    # `instrlab compare`: a run against itself fails the rule (equal is not above)
    cli = [sys.executable, "-m", "instrlab.cli", "compare"]
    same = subprocess.run([*cli, parent.info.run_id, parent.info.run_id, "--check",
                           "--instruments"], env=env, capture_output=True, text=True, timeout=120)
    assert same.returncode == 1, same.stderr
    tim = report["TimGM6mb"]["macro_f1"]
    assert (f"hold out TimGM6mb, train seed 0: held-out macro F1 {tim:.3f}, not above "
            f"{tim:.3f}") in same.stdout
    assert "octave below" in same.stdout and "real music" in same.stdout
    assert "soprano_sax" in same.stdout  # --instruments: a row per instrument and fold
    for run_id, message in [(folds["TimGM6mb"].info.run_id, "is not a leave-one-family-out "
                             "run (its step is 'train'); give the parent run id"),
                            ("0" * 32, "no MLflow run '00000000")]:
        bad = subprocess.run([*cli, run_id, parent.info.run_id], env=env,
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1


def test_the_rule_compares_the_folds_and_seeds_both_runs_have() -> None:
    from instrlab.folds.compare import compare

    def runs(*f1: float, music: float = 0.5) -> dict:
        return {str(seed): {"A": {"macro_f1": v, "macro_f1_music": music, "map": 0.9},
                            "B": {"macro_f1": v, "macro_f1_music": music}}
                for seed, v in enumerate(f1)}

    passed = compare(runs(0.5, 0.6), runs(0.51, 0.61))
    assert passed.failures == [] and passed.seeds == ["0", "1"]
    assert passed.folds == ["A", "B"] and passed.figures == ["macro_f1", "macro_f1_music"]
    assert passed.instruments == []  # these reports hold none; "map" is not one
    assert compare(runs(0.5, 0.6), runs(0.51, 0.6)).failures == [
        f"hold out {f}, train seed 1: held-out macro F1 0.600, not above 0.600" for f in "AB"]
    assert compare(runs(0.5), runs(0.6, music=0.49)).failures == [
        f"hold out {f}: real music 0.490 (mean), below 0.500" for f in "AB"]
    assert compare(runs(0.5, 0.9, 0.9), runs(0.6)).seeds == ["0"]  # the common seeds only
    with pytest.raises(InstrlabError, match="share no training seed .* --train-seeds 0 1"):
        compare(runs(0.5, 0.6), {"7": runs(0.6)["0"]})
    with pytest.raises(InstrlabError, match="share no fold"):
        compare(runs(0.5), {"0": {"C": {"macro_f1": 0.6}}})


def test_several_training_seeds_report_their_mean_and_each_seed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "INSTRLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "folds.py"),
         "--soundfonts", "FluidR3_GM.sf2 TimGM6mb.sf2",
         "--hold-out", "TimGM6mb.sf2", "--train-seeds", "3 5", "--train-seed", "",
         "--eval-samples", "8", "--octaves", "none", "--music", "none", "--preset", "plain",
         "--n-samples", "32", "--epochs", "1", "--batch-size", "8", "--workers", "1",
         "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # as MLproject would
    assert proc.returncode == 0, proc.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name("instrlab-seed12")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parent = next(r for r in runs if r.data.tags.get("instrlab.step") == "folds")
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    seeds = {r.data.tags["instrlab.train_seed"]: r for r in folds}
    assert sorted(seeds) == ["3", "5"] and len(folds) == 2
    assert all(r.data.params["train.seed"] == s for s, r in seeds.items())
    assert seeds["5"].info.run_name == "fold TimGM6mb: hold out TimGM6mb.sf2, train seed 5"
    m, p = parent.data.metrics, parent.data.params
    assert p["folds.train_seeds"] == "3 5" and "train.seed" not in p
    each = [seeds[s].data.metrics["heldout_macro_f1"] for s in ("3", "5")]
    assert m["heldout_macro_f1/TimGM6mb/train_seed_3"] == each[0]
    assert m["heldout_macro_f1/TimGM6mb/train_seed_5"] == each[1]
    assert m["heldout_macro_f1/TimGM6mb"] == pytest.approx(sum(each) / 2)
    assert m["heldout_macro_f1_mean"] == pytest.approx(sum(each) / 2)
    assert "heldout_worst_f1/TimGM6mb/train_seed_5" in m
    client = mlflow.MlflowClient()
    per_seed = json.loads(Path(client.download_artifacts(
        parent.info.run_id, "folds/report_seeds.json", str(tmp_path))).read_text())
    assert set(per_seed) == {"3", "5"}
    assert per_seed["3"]["TimGM6mb"]["macro_f1"] == each[0]
    table = Path(client.download_artifacts(parent.info.run_id, "folds/report.md",
                                           str(tmp_path))).read_text()
    assert f"({each[0]:.3f} / {each[1]:.3f})" in table
    assert "mean of train seeds 3 / 5" in table
    assert "mean of train seeds 3 5" in proc.stdout


def test_the_folds_default_to_the_soundfonts_main_trains_on() -> None:
    """No --soundfonts: the experiment's own, so `instrlab folds` measures the default's
    training data (the procedural families, their exclusions and weights included)."""
    from instrlab.config import ExperimentConfig, preset
    from instrlab.folds.run import check_folds, fold_data

    cfg = ExperimentConfig()
    folds = {f.name: f for f in check_folds(cfg, FoldsConfig())}
    assert folds["TimGM6mb"].train == ("FluidR3_GM.sf2", "MuseScore_General.sf3",
                                       "procedural:1", "procedural:2")
    tim = fold_data(cfg, folds["TimGM6mb"])
    assert set(cfg.data.soundfont_exclude) <= set(tim.soundfont_exclude)
    assert tim.soundfont_weights == cfg.data.soundfont_weights
    assert RECORDED.on(("a.sf2", "b.sf2")) == RECORDED  # given soundfonts stay
    with pytest.raises(InstrlabError, match="at least two different soundfonts"):
        check_folds(preset("plain"), FoldsConfig())
