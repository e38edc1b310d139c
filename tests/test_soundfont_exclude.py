"""User exclusions (--soundfont-exclude INSTRUMENT=SOUNDFONT): never rendered, named by the
dataset's soundfonts, added by the folds to each fold's own, and bad pairs as one-line
errors before any work. Real FluidSynth renders the dataset; real processes run the CLI."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from instrlab.config import ExperimentConfig
from instrlab.dataset import DatasetConfig, open_dataset
from instrlab.dataset.config import identity_digest
from instrlab.dataset.render import SampleRenderer
from instrlab.errors import InstrlabError
from instrlab.folds.config import FoldsConfig
from instrlab.folds.run import fold_data, plan_folds
from instrlab.instruments import seed12
from instrlab.synth.soundfonts import find_soundfont

FONTS = ("FluidR3_GM.sf2", "MuseScore_General.sf3", "TimGM6mb.sf2", "sf_GMbank.sf2")


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instrlab.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env={"INSTRLAB_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
                               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})


def test_an_excluded_pair_is_never_rendered(tmp_path: Path) -> None:
    proc = cli(tmp_path, "generate", "--n-samples", "24", "--seed", "3", "--no-augment",
               "--extra-soundfont", "TimGM6mb.sf2", "--soundfont-exclude",
               "violin=TimGM6mb.sf2 acoustic_bass=FluidR3_GM.sf2", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    [path] = [p.parent for p in (tmp_path / "cache").rglob("manifest.jsonl")]
    fluid, tim = (find_soundfont(s).resolve().name for s in ("FluidR3_GM.sf2", "TimGM6mb.sf2"))
    used = {name: set() for name in ("violin", "acoustic_bass", "piccolo")}
    for row in open_dataset(path).manifest():
        for inst, sf in zip(row["instruments"], row["soundfonts"]):
            used.get(inst, set()).add(sf)
    assert used["violin"] == {fluid} and used["acoustic_bass"] == {tim}
    assert used["piccolo"] == {fluid, tim}  # the others draw both


def test_the_primary_is_named_by_its_default_file_name() -> None:
    def digest(**kw: object) -> str:
        return identity_digest(SampleRenderer(DatasetConfig(
            n_samples=8, extra_soundfonts=("TimGM6mb.sf2",), **kw)).identity())

    pair = (("violin", "FluidR3_GM.sf2"),)
    assert digest(soundfont_exclude=pair) == digest(soundfont="FluidR3_GM.sf2",
                                                    soundfont_exclude=pair) != digest()


def test_folds_add_the_users_exclusions_of_their_training_soundfonts() -> None:
    folds = {f.name: f for f in plan_folds(seed12(), FoldsConfig(soundfonts=FONTS))}
    plain = ExperimentConfig()
    assert fold_data(plain, folds["TimGM6mb"]).soundfont_exclude == folds["TimGM6mb"].exclude
    mine = (("hammond_organ", "TimGM6mb.sf2"), ("violin", "FluidR3_GM.sf2"))
    cfg = dataclasses.replace(plain, data=dataclasses.replace(plain.data,
                                                              soundfont_exclude=mine))
    tim = fold_data(cfg, folds["TimGM6mb"]).soundfont_exclude  # TimGM6mb is held out there
    assert tim == folds["TimGM6mb"].exclude + (("violin", "FluidR3_GM.sf2"),)
    fluid = fold_data(cfg, folds["FluidR3_GM"]).soundfont_exclude
    assert fluid == folds["FluidR3_GM"].exclude + (("hammond_organ", "TimGM6mb.sf2"),)


def test_folds_exclusions_may_name_any_benchmark_soundfont(tmp_path: Path) -> None:
    from instrlab.cli import resolve_config

    cfg = resolve_config(["folds", "--soundfonts", *FONTS, "procedural:1",
                          "--soundfont-exclude", "soprano_sax=procedural:1"])
    assert cfg.data == dataclasses.replace(ExperimentConfig().data, soundfont_exclude=(
        ("soprano_sax", "procedural:1"),))


@pytest.mark.parametrize(("pairs", "message"), [
    (["violin=Nope.sf2"], "soundfont_exclude violin=Nope.sf2: Nope.sf2 is not one of the "
                          "soundfonts FluidR3_GM.sf2, TimGM6mb.sf2; name one of them"),
    (["fiddle=TimGM6mb.sf2"], "soundfont_exclude names instruments ['fiddle'] that seed12 "
                              "does not have"),
    # the fold holding out TimGM6mb would have nothing left for the violin
    (["violin=FluidR3_GM.sf2"], "soundfont_exclude leaves no soundfont to render violin with"),
])
def test_bad_exclusions_stop_the_folds_before_any_work(tmp_path: Path, pairs: list[str],
                                                       message: str) -> None:
    proc = cli(tmp_path, "folds", "--soundfonts", "FluidR3_GM.sf2", "TimGM6mb.sf2",
               "--hold-out", "TimGM6mb.sf2", "--soundfont-exclude", *pairs)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no dataset


def test_an_exclusion_must_be_a_pair() -> None:
    with pytest.raises(InstrlabError, match="must be INSTRUMENT=SOUNDFONT"):
        DatasetConfig(soundfont_exclude=(("violin",),))  # type: ignore[arg-type]
