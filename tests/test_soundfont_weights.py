"""Soundfont weights: how often each soundfont renders an instrument, deterministic per clip
seed, kept by the folds for the soundfonts they train on, and bad weights as one-line
errors. Real FluidSynth renders the dataset."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from instrlab.config import ExperimentConfig
from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset
from instrlab.dataset.config import identity_digest
from instrlab.dataset.render import SampleRenderer
from instrlab.dataset.soundfont_draw import draw_soundfonts
from instrlab.errors import InstrlabError
from instrlab.folds.config import FoldsConfig
from instrlab.folds.run import fold_data, plan_folds
from instrlab.instruments import seed12
from instrlab.synth.augment import AugmentConfig
from instrlab.synth.soundfonts import find_soundfont

FONTS = ("FluidR3_GM.sf2", "MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2")


def test_draws_follow_the_weights_and_the_exclusions() -> None:
    seeds = range(3000)
    per_inst = Counter(draw_soundfonts(s, [0], 3, "instrument", [], [1.0, 3.0, 0.5])[0]
                       for s in seeds)
    assert 0.60 < per_inst[1] / 3000 < 0.73  # 3 / 4.5 = 0.67
    assert 0.06 < per_inst[2] / 3000 < 0.17  # 0.5 / 4.5 = 0.11
    allowed = [[0, 2], [1]]  # instrument 1 never uses soundfonts 0 and 2
    drawn = [draw_soundfonts(s, [0, 1], 3, "instrument", allowed, [1.0, 100.0, 3.0])
             for s in seeds]
    assert all(d[1] == 1 and d[0] in (0, 2) for d in drawn)
    assert 0.70 < sum(d[0] == 2 for d in drawn) / 3000 < 0.80  # 3 / 4
    whole = [draw_soundfonts(s, [0, 1, 2], 2, "sample", [], [1.0, 4.0]) for s in seeds]
    assert all(len(set(d)) == 1 for d in whole)  # one soundfont for the whole clip
    assert 0.75 < sum(d[0] == 1 for d in whole) / 3000 < 0.85
    # the same clip seed, the same draw
    assert drawn[:50] == [draw_soundfonts(s, [0, 1], 3, "instrument", allowed,
                                          [1.0, 100.0, 3.0]) for s in range(50)]


def test_weights_name_the_dataset_by_position_and_are_absent_when_unset() -> None:
    def identity(**kw: object) -> dict:
        return SampleRenderer(DatasetConfig(n_samples=8, **kw)).identity()

    fonts = {"extra_soundfonts": ("TimGM6mb.sf2",)}
    plain = identity(**fonts)
    assert "soundfont_weights" not in plain["config"]  # older datasets keep their names
    weighted = identity(**fonts, soundfont_weights=(("TimGM6mb.sf2", 2.0),))
    assert weighted["config"]["soundfont_weights"] == [1.0, 2.0]
    # the primary by its default name, or by the name given: the same dataset
    a = identity(**fonts, soundfont_weights=(("FluidR3_GM.sf2", 2.0),))
    b = identity(**fonts, soundfont="FluidR3_GM.sf2", soundfont_weights=(("FluidR3_GM.sf2", 2),))
    assert identity_digest(a) == identity_digest(b) != identity_digest(weighted)
    assert identity_digest(plain) != identity_digest(weighted)


def test_a_weighted_dataset_renders_mostly_the_heavy_soundfont(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path))
    cfg = DatasetConfig(n_samples=40, seed=4, augment=AugmentConfig(), test_protocol=False,
                        extra_soundfonts=("TimGM6mb.sf2",),
                        soundfont_weights=(("TimGM6mb.sf2", 9.0),))
    ds = open_dataset(generate_dataset(cfg, workers=1, progress=False))
    tim = find_soundfont("TimGM6mb.sf2").resolve().name
    used = Counter(sf for row in ds.manifest() for sf in row["soundfonts"])
    assert set(used) <= {tim, find_soundfont("FluidR3_GM.sf2").resolve().name}
    assert used[tim] / sum(used.values()) > 0.75  # 0.9 expected


def test_folds_keep_the_weights_of_the_soundfonts_they_train_on() -> None:
    data = DatasetConfig(soundfont_weights=(("TimGM6mb.sf2", 2.0),
                                            ("MuseScore_General.sf3", 0.5)))
    cfg = ExperimentConfig(data=data)
    folds = {f.name: f for f in plan_folds(seed12(), FoldsConfig(soundfonts=FONTS))}
    assert fold_data(cfg, folds["TimGM6mb"]).soundfont_weights == (
        ("MuseScore_General.sf3", 0.5),)
    assert fold_data(cfg, folds["FluidR3_GM"]).soundfont_weights == data.soundfont_weights


@pytest.mark.parametrize(("weights", "message"), [
    ((("TimGM6mb.sf2", 2.0), ("TimGM6mb.sf2", 3.0)), "TimGM6mb.sf2: given twice"),
    ((("TimGM6mb.sf2", 0.0),), r"TimGM6mb.sf2=0.0: must be a positive number"),
    ((("TimGM6mb.sf2", -1.0),), "must be a positive number"),
    ((("TimGM6mb.sf2", float("nan")),), "must be a positive number"),
    ((("TimGM6mb.sf2", float("inf")),), "must be a positive number"),
])
def test_bad_weights_are_one_line_errors(weights: tuple, message: str) -> None:
    with pytest.raises(InstrlabError, match=message):
        DatasetConfig(extra_soundfonts=("TimGM6mb.sf2",), soundfont_weights=weights)


def test_a_weight_must_name_a_soundfont_of_the_data() -> None:
    cfg = DatasetConfig(extra_soundfonts=("TimGM6mb.sf2",),
                        soundfont_weights=(("Nope.sf2", 2.0),))
    with pytest.raises(InstrlabError, match="soundfont weight Nope.sf2: not one of the "
                                            "soundfonts FluidR3_GM.sf2, TimGM6mb.sf2"):
        SampleRenderer(cfg)


@pytest.mark.parametrize(("words", "message"), [
    (["TimGM6mb.sf2=x"], "data.soundfont_weights"),
    (["TimGM6mb.sf2"], "data.soundfont_weights"),
    (["Nope.sf2=2"], "soundfont weight Nope.sf2: not one of the soundfonts"),
])
def test_bad_weights_from_the_command_line(tmp_path: Path, words: list[str],
                                           message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "generate", "--n-samples", "4",
                           "--extra-soundfont", "TimGM6mb.sf2", "--soundfont-weight", *words],
                          capture_output=True, text=True, timeout=120,
                          env={"INSTRLAB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not any(tmp_path.rglob("*.npy"))


def test_folds_weights_may_name_any_benchmark_soundfont(tmp_path: Path) -> None:
    """The folds' experiment keeps the defaults (one home for them); its weights are checked
    against the benchmark's soundfonts, of which each fold trains on some."""
    from instrlab.cli import resolve_config

    cfg = resolve_config(["folds", "--soundfonts", "FluidR3_GM.sf2", "TimGM6mb.sf2",
                          "procedural:1", "--hold-out", "TimGM6mb.sf2",
                          "--soundfont-weight", "procedural:1=0.5"])
    assert cfg.data.soundfont_weights == (("procedural:1", 0.5),)
    assert cfg.data == dataclasses.replace(ExperimentConfig().data, soundfont_weights=(
        ("procedural:1", 0.5),))
    proc = subprocess.run([sys.executable, "-m", "instrlab.cli", "folds", "--soundfonts",
                           "FluidR3_GM.sf2", "TimGM6mb.sf2", "--hold-out", "TimGM6mb.sf2",
                           "--soundfont-weight", "sf_GMbank.sf2=2"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"INSTRLAB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().endswith("soundfont weight sf_GMbank.sf2: not one of the "
                                        "soundfonts FluidR3_GM.sf2, TimGM6mb.sf2; name one "
                                        "of them"), proc.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no dataset


def test_evaluation_clips_are_the_same_whatever_the_training_weights() -> None:
    from instrlab.config import evaluation_data

    def eval_digest(**kw: object) -> str:
        data = DatasetConfig(n_samples=8, extra_soundfonts=("TimGM6mb.sf2",), **kw)
        return identity_digest(SampleRenderer(evaluation_data(data)).identity())

    assert eval_digest(soundfont_weights=(("TimGM6mb.sf2", 3.0),)) == eval_digest()
