"""One home for every default: the Python API, ``instrlab`` and ``mlflow run .`` agree.

The MLproject side renders each entry point's command line with MLflow's own project
loader (what ``mlflow run`` executes) and resolves it as the experiment script does.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.projects._project_spec import load_project

from instrlab import overrides
from instrlab.cli import build_parser, entry_point_argv, resolve_config
from instrlab.config import (
    FAMILY_BLEND,
    EvalConfig,
    ExperimentConfig,
    evaluation_data,
    preset,
)
from instrlab.dataset.config import DEFAULT_FAMILIES, DatasetConfig
from instrlab.dataset.render import SampleRenderer
from instrlab.errors import InstrlabError
from instrlab.models.factory import ModelConfig
from instrlab.scores import MUSIC_GENERATORS, ScoreConfig
from instrlab.synth.augment import AugmentConfig
from instrlab.training.config import SpecAugmentConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def mlflow_run_config(entry_point: str, params: dict[str, str] | None = None
                      ) -> ExperimentConfig:
    """What ``mlflow run . -e ENTRY_POINT -P ...`` would train with."""
    command = load_project(str(ROOT)).get_entry_point(entry_point).compute_command(
        params or {}, None)
    argv = shlex.split(command)
    assert argv[0] == "python" and argv[1].startswith("experiments/"), argv
    script = Path(argv[1]).stem
    command_name = "main" if script == "main" else script
    return resolve_config([command_name, *entry_point_argv(argv[2:])])


def patch_default(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, value: object) -> None:
    """Change a dataclass field's default in this process, as an edit of its source would."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    defaults = list(cls.__init__.__defaults__)  # type: ignore[misc]
    assert len(defaults) == len(names)  # every field has a default
    defaults[names.index(name)] = value
    monkeypatch.setattr(cls.__init__, "__defaults__", tuple(defaults))


def test_main_mlflow_run_and_the_python_api_resolve_the_same_config() -> None:
    api = ExperimentConfig()
    assert resolve_config(["main"]) == api
    assert resolve_config(["train"]) == api
    assert resolve_config(["tune"]) == api
    assert mlflow_run_config("main") == api
    assert mlflow_run_config("train") == api
    assert mlflow_run_config("tune") == api
    assert mlflow_run_config("folds") == api
    assert mlflow_run_config("generate").data == api.data
    # the defaults are the robust pipeline's, not the seed's plain protocol
    assert api.train.epochs == 32 and api.train.tune_thresholds and api.train.min_labels == 1
    assert api.train.spec_augment.active and api.data.augment.active
    assert api.model.tta_shifts == (-4, -2, 0, 2, 4) and preset("plain").model.tta_shifts == ()
    assert preset("seed").model == ModelConfig("seed_cnn")


def test_a_changed_dataclass_default_reaches_all_three(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_default(monkeypatch, TrainConfig, "epochs", 31)
    patch_default(monkeypatch, DatasetConfig, "n_samples", 123)
    patch_default(monkeypatch, SpecAugmentConfig, "freq_mask_bins", 5)
    api = ExperimentConfig()
    assert (api.train.epochs, api.data.n_samples) == (31, 123)
    assert api.train.spec_augment.freq_mask_bins == 5
    for cfg in (resolve_config(["main"]), mlflow_run_config("main"),
                mlflow_run_config("tune")):
        assert cfg == api
    assert mlflow_run_config("generate").data.n_samples == 123
    assert resolve_config(["evaluate", "RUN"]).data.n_samples == 123
    assert preset("plain").data.n_samples == 123  # presets change the defaults, not copy them
    helptext = build_parser()._subparsers._group_actions[0].choices["main"].format_help()
    assert "(default: 31)" in " ".join(helptext.split())


def test_presets_are_named_changes_of_the_defaults() -> None:
    plain, seed = preset("plain"), preset("seed")
    assert plain.data.augment == AugmentConfig() and not plain.train.spec_augment.active
    assert (plain.train.epochs, plain.train.tune_thresholds, plain.train.min_labels) == (
        20, False, 0)
    assert plain.model == ModelConfig("mel_cnn")  # the default model, predicting from its input
    for protocol in (plain.data, seed.data):  # the seed's: FluidR3 alone, pitches 60..72
        assert (protocol.soundfont, protocol.extra_soundfonts, protocol.score) == (
            None, (), ScoreConfig())
    assert (seed.data.features, seed.model.name, seed.train.scheduler) == (
        "seed_image", "seed_cnn", "none")
    assert resolve_config(["main", "--preset", "seed"]) == seed
    assert mlflow_run_config("seed_repro") == seed
    assert mlflow_run_config("main", {"preset": "plain"}) == plain
    for reverted in (plain, seed, preset("random_notes")):  # the seed's notes and rate
        assert (reverted.data.score, reverted.train.lr) == (ScoreConfig(), TrainConfig().lr)
    recorded = preset("recorded")  # the default until 2026-12-07: recorded families only
    assert recorded.data == dataclasses.replace(
        ExperimentConfig().data, extra_soundfonts=DEFAULT_FAMILIES, soundfont_exclude=(),
        soundfont_weights=(), augment=DatasetConfig().augment)
    assert dataclasses.replace(recorded, data=ExperimentConfig().data) == ExperimentConfig()
    random_notes = preset("random_notes")  # the default until 2026-12-06
    assert random_notes.train == dataclasses.replace(ExperimentConfig().train, lr=0.001)
    assert random_notes.data == dataclasses.replace(recorded.data, score=ScoreConfig())
    assert dataclasses.replace(random_notes, data=ExperimentConfig().data,
                               train=ExperimentConfig().train) == ExperimentConfig()
    assert mlflow_run_config("main", {"preset": "random_notes"}) == random_notes
    with pytest.raises(InstrlabError, match="unknown preset 'fast'; use one of default"):
        preset("fast")


def test_the_default_trains_on_every_family_and_music_and_tests_on_the_seeds_protocol(
) -> None:
    data = ExperimentConfig().data
    assert data.extra_soundfonts == ("MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2",
                                     "procedural:1", "procedural:2")
    # README "Procedural families and family blend together": FluidR3_GM three times as
    # often, the procedural families half as often and without their organ, sax and piccolo,
    # half the instruments of an augmented clip blended from two families
    assert dict(data.soundfont_weights) == {"FluidR3_GM.sf2": 3.0, "procedural:1": 0.5,
                                            "procedural:2": 0.5}
    assert set(data.soundfont_exclude) == {(i, f) for i in ("hammond_organ", "soprano_sax",
                                                            "piccolo")
                                           for f in ("procedural:1", "procedural:2")}
    assert data.augment == dataclasses.replace(DatasetConfig().augment, family_blend=0.5)
    assert data.soundfont_per == "instrument" and data.test_protocol
    # half the seed's random notes, a quarter at other paces, a quarter music (README
    # "Scores"); no registers: they measured worse on a held-out family
    assert data.score == ScoreConfig(generators=MUSIC_GENERATORS, music_span=7)
    assert dict(MUSIC_GENERATORS)["seed_random"] == 0.5 and "paced_random" in dict(
        MUSIC_GENERATORS)
    assert ExperimentConfig().train.lr == 0.003
    none = resolve_config(["main", "--extra-soundfont", "none"]).data
    assert (none.extra_soundfonts, none.soundfont_exclude, none.soundfont_weights) == (
        (), (), ())
    assert none.augment == DatasetConfig().augment  # the default's blend needs two soundfonts
    one = resolve_config(["main", "--extra-soundfont", "TimGM6mb.sf2"]).data
    assert one.extra_soundfonts == ("TimGM6mb.sf2",)


def test_the_defaults_exclusions_and_weights_follow_the_soundfonts_but_yours_stay() -> None:
    """The default's pairs name the procedural families: with other soundfonts those that
    name one left out go, so --extra-soundfont alone is enough; a user's pairs are kept
    (and checked when the dataset is built)."""
    one = resolve_config(["main", "--extra-soundfont", "TimGM6mb.sf2"]).data
    assert (one.soundfont_exclude, one.soundfont_weights) == ((), (("FluidR3_GM.sf2", 3.0),))
    other = resolve_config(["main", "--soundfont", "TimGM6mb.sf2"]).data
    assert other.soundfont_weights == (("procedural:1", 0.5), ("procedural:2", 0.5))
    mine = resolve_config(["main", "--extra-soundfont", "TimGM6mb.sf2", "--soundfont-weight",
                           "sf_GMbank.sf2=2", "--soundfont-exclude", "violin=sf_GMbank.sf2"]).data
    assert mine.soundfont_weights == (("sf_GMbank.sf2", 2.0),)
    assert mine.soundfont_exclude == (("violin", "sf_GMbank.sf2"),)
    with pytest.raises(InstrlabError, match="sf_GMbank.sf2 is not one of the soundfonts"):
        SampleRenderer(mine)
    other_set = resolve_config(["main", "--instruments", "my_set"]).data  # procedural: seed12's
    assert (other_set.extra_soundfonts, other_set.soundfont_exclude) == (DEFAULT_FAMILIES, ())
    assert other_set.soundfont_weights == (("FluidR3_GM.sf2", 3.0),)
    kept = resolve_config(["main", "--extra-soundfont", "TimGM6mb.sf2", "--extra-soundfont",
                           "procedural:2"]).data
    assert kept.soundfont_exclude == tuple(p for p in ExperimentConfig().data.soundfont_exclude
                                           if p[1] == "procedural:2")


def test_the_defaults_values_given_by_hand_are_not_taken_back(tmp_path: Path) -> None:
    """fit_defaults drops the default's pairs and blend where a run cannot use them; the same
    values given by hand are the user's and name the problem instead of vanishing."""
    none = ["main", "--extra-soundfont", "none"]
    cases = [(["--soundfont-weight", "procedural:1=0.5"], "soundfont_weights procedural:1=0.5"),
             (["--soundfont-exclude", "piccolo=procedural:2"],
              "soundfont_exclude piccolo=procedural:2: procedural:2 is not one of"),
             (["--augment-family-blend", str(FAMILY_BLEND)], "family_blend mixes two soundfonts"),
             (["--set", f"data.augment.family_blend={FAMILY_BLEND}"],
              "family_blend mixes two soundfonts")]
    for extra, message in cases:
        with pytest.raises(InstrlabError, match=message):
            resolve_config([*none, *extra])
    toml = tmp_path / "exp.toml"
    toml.write_text('[data]\nextra_soundfonts = []\nsoundfont_weights = [["procedural:2", 0.5]]\n')
    with pytest.raises(InstrlabError, match="procedural:2 is not one of the soundfonts "
                                            "FluidR3_GM.sf2; drop it or add the soundfont"):
        resolve_config(["main", "--config", str(toml)])
    # where the soundfont is there, the same values are simply kept
    both = resolve_config(["main", "--extra-soundfont", "procedural:1", "--soundfont-weight",
                           "procedural:1=0.5", "--augment-family-blend", "0.5"]).data
    assert both.soundfont_weights == (("procedural:1", 0.5),)
    assert both.augment.family_blend == 0.5


def test_options_set_and_config_files_resolve_in_one_order(tmp_path: Path) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text('preset = "plain"\n[train]\nepochs = 7\nlr = 0.01\n'
                    '[data.augment]\ngain_db = 3\n[model.params]\nwidth = 16\n')
    cfg = resolve_config(["main", "--config", str(toml)])
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.01 and cfg.model.params == {"width": 16}
    assert cfg.data.augment == AugmentConfig(gain_db=3)  # on the plain preset's clean clips
    assert not cfg.train.spec_augment.active
    # --set after the file, options after --set; a preset option wins over the file's
    cfg = resolve_config(["main", "--config", str(toml), "--set", "train.epochs=9 train.lr=0.02",
                          "--epochs", "11", "--preset", "default"])
    assert (cfg.train.epochs, cfg.train.lr) == (11, 0.02)
    assert cfg.train.spec_augment == ExperimentConfig().train.spec_augment
    cfg = resolve_config(["main", "--set", "data.augment.noise_snr_db=10,20",
                          "--set", "data.extra_soundfonts=[\"a.sf2\"]; train.tune_thresholds=no",
                          "--model-param", "width=8", "--model-param", "dropout=0.25"])
    assert cfg.data.augment.noise_snr_db == (10.0, 20.0)
    assert cfg.data.extra_soundfonts == ("a.sf2",) and cfg.train.tune_thresholds is False
    assert cfg.model.params == {"width": 8, "dropout": 0.25}
    assert mlflow_run_config("main", {"set": "train.epochs=3 data.score.clip_seconds=2.5",
                                      "lr": "0.004", "n_samples": "96"}) == overrides.override(
        ExperimentConfig(), {"train.epochs": 3, "data.score.clip_seconds": 2.5,
                             "train.lr": 0.004, "data.n_samples": 96})
    # --no-augment clears the audio augmentation; a field given with it still counts
    cfg = resolve_config(["main", "--no-augment", "--augment-gain-db", "2"])
    assert cfg.data.augment == AugmentConfig(gain_db=2)


def test_held_out_figures_are_set_like_every_other_setting(tmp_path: Path) -> None:
    assert ExperimentConfig().eval == EvalConfig() == EvalConfig((-1, 1), (), 500)
    assert preset("plain").eval == preset("seed").eval == EvalConfig()  # they only add figures
    flat = ExperimentConfig().flat_params()
    assert (flat["eval.octaves"], flat["eval.soundfonts"], flat["eval.samples"]) == (
        (-1, 1), (), 500)
    want = EvalConfig((-1, 2), ("TimGM6mb.sf2", "sf_GMbank.sf2"), 8)
    for command in ("main", "train"):
        assert resolve_config([command, "--heldout-octaves", "-1", "2", "--heldout-soundfont",
                               "TimGM6mb.sf2", "--heldout-soundfont", "sf_GMbank.sf2",
                               "--heldout-samples", "8"]).eval == want
        assert mlflow_run_config(command, {"heldout_octaves": "-1 2", "heldout_samples": "8",
                                           "heldout_soundfonts": "TimGM6mb.sf2 sf_GMbank.sf2",
                                           }).eval == want
    assert mlflow_run_config("main", {"heldout_octaves": "1"}).eval.octaves == (1,)
    assert mlflow_run_config("main", {"heldout_octaves": "none"}).eval.octaves == ()
    assert resolve_config(["main", "--set", "eval.samples=0"]).eval.samples == 0
    assert ExperimentConfig().eval.music == "corpus"
    assert resolve_config(["main", "--heldout-music", "none"]).eval.music is None
    for command in ("main", "train"):
        cfg = mlflow_run_config(command, {"heldout_music": "none",
                                          "score_generators": "seed_random=1 melody=0.5"})
        assert cfg.eval.music is None
        assert cfg.data.score.generators == (("seed_random", 1.0), ("melody", 0.5))
    toml = tmp_path / "exp.toml"
    toml.write_text('[eval]\noctaves = [-2]\nsoundfonts = ["TimGM6mb.sf2"]\nsamples = 3\n')
    assert resolve_config(["main", "--config", str(toml)]).eval == EvalConfig(
        (-2,), ("TimGM6mb.sf2",), 3)


def test_evaluation_data_is_clean_and_seeded_apart_from_training() -> None:
    cfg = resolve_config(["evaluate", "RUN"])
    assert cfg.data == evaluation_data(DatasetConfig())
    assert cfg.data.seed == 1 and not cfg.data.augment.active
    assert resolve_config(["evaluate", "RUN", "--seed", "4"]).data.seed == 4
    assert mlflow_run_config("evaluate", {"model_uri": "RUN"}).data == cfg.data


def test_evaluate_renders_the_named_soundfont_alone_unless_told_otherwise() -> None:
    assert DatasetConfig().extra_soundfonts  # training mixes families: evaluation must not
    data = resolve_config(["evaluate", "RUN", "--soundfont", "TimGM6mb.sf2"]).data
    assert (data.soundfont, data.extra_soundfonts) == ("TimGM6mb.sf2", ())
    assert resolve_config(["evaluate", "RUN"]).data.extra_soundfonts == ()
    mixed = resolve_config(["evaluate", "RUN", "--extra-soundfont", "TimGM6mb.sf2",
                            "--soundfont-per", "instrument"]).data
    assert (mixed.extra_soundfonts, mixed.soundfont_per) == (("TimGM6mb.sf2",), "instrument")


@pytest.mark.parametrize(("train_seed", "eval_seed"), [(0, 1), (7, 1), (1, 0)])
def test_held_out_clips_never_share_the_training_scores(train_seed: int, eval_seed: int) -> None:
    data = resolve_config(["main", "--seed", str(train_seed)]).data
    assert evaluation_data(data).seed == eval_seed
    assert EvalConfig().octave_data(data, 1).seed == eval_seed
    assert EvalConfig().soundfont_data(data, "TimGM6mb.sf2").seed == eval_seed


@pytest.mark.parametrize(("changes", "message"), [
    ({"train.epoch": "3"}, "unknown setting 'train.epoch'. Did you mean 'epochs'?"),
    ({"train.epochs": "x"}, "setting 'train.epochs': 'x' is not a valid int"),
    ({"train.epochs": "0"}, "epochs = 0 must be an integer >= 1"),
    ({"data.augment.gain_db": "-1"}, "augment gain_db must be in 0..40"),
    ({"data.augment.noise_snr_db": "1,2,3"}, "expected 2 values"),
    ({"train.tune_thresholds": "maybe"}, "expected true or false"),
    ({"model.params.width.x": "1"}, "'width' holds plain values"),
    ({"data.n_samples": "2.5"}, "is not a valid int"),
    ({"eval.octaves": "0"}, "eval.octaves (--heldout-octaves) must be non-zero whole octaves"),
    ({"eval.octaves": "-1,4"}, "must be non-zero whole octaves in -3..3, got [-1, 4]"),
    ({"eval.samples": "-1"}, "eval.samples (--heldout-samples) must be in 0..1000000"),
])
def test_bad_settings_are_one_line_errors(changes: dict[str, str], message: str) -> None:
    with pytest.raises(InstrlabError, match=re.escape(message)) as info:
        overrides.override(ExperimentConfig(), changes)
    assert "\n" not in str(info.value)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "instrlab.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_config_command_prints_every_path_and_bad_input_is_one_line(tmp_path: Path) -> None:
    out = run_cli("config", "--set", "train.epochs=5", "--augment-gain-db", "2")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" = ", 1) for line in out.stdout.splitlines())
    assert lines["train.epochs"] == "5" and lines["data.augment.gain_db"] == "2"
    assert lines["data.instruments"] == "'seed12'" and "train.spec_augment.eq_knots" in lines
    for args, message in [
        (("config", "--set", "train.epoc=5"), "Did you mean 'epochs'?"),
        (("config", "--config", str(tmp_path / "missing.toml")), "does not exist"),
        (("config", "--set", "epochs"), "must look like PATH=VALUE"),
    ]:
        bad = run_cli(*args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
        assert bad.stderr.startswith("instrlab: error: ") and message in bad.stderr
    (tmp_path / "broken.toml").write_text("[train\nepochs = ")
    bad = run_cli("config", "--config", str(tmp_path / "broken.toml"))
    assert bad.returncode == 2 and "is not readable TOML" in bad.stderr
