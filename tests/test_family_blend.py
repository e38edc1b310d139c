"""Family blend (--augment-family-blend P): a share of the instruments of augmented clips is
rendered by a second soundfont the instrument may use and mixed in; deterministic per clip,
never a soundfont the instrument is barred from, absent from older datasets' identities,
and a one-line error where there is nothing to blend. Real FluidSynth renders the clips;
real processes run the CLI."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from instrlab.dataset import DatasetConfig
from instrlab.dataset.config import identity_digest
from instrlab.dataset.render import SampleRenderer
from instrlab.dataset.stems import blended
from instrlab.dataset.store import split_indices
from instrlab.errors import InstrlabError
from instrlab.synth.augment import AugmentConfig, family_blends
from instrlab.synth.soundfonts import find_soundfont

FONTS = ("TimGM6mb.sf2",)


def data(blend: float, **kw: object) -> DatasetConfig:
    base = DatasetConfig(n_samples=16, seed=5, extra_soundfonts=FONTS, **kw)
    aug = dataclasses.replace(base.augment, family_blend=blend, prob=1.0)
    return dataclasses.replace(base, augment=aug)


def test_draws_are_per_clip_seed_from_the_allowed_soundfonts() -> None:
    cfg = AugmentConfig(family_blend=0.5)
    others = [[1, 2], [], [3]]
    draws = [family_blends(cfg, seed, others) for seed in range(400)]
    assert draws == [family_blends(cfg, seed, others) for seed in range(400)]
    assert all(d[1] is None for d in draws)  # nothing else to blend with
    picked = [d[0] for d in draws if d[0]]
    assert {b for b, _ in picked} == {1, 2} and all(0.25 <= w <= 0.75 for _, w in picked)
    assert 0.4 < len(picked) / 400 < 0.6
    # three draws per stem either way: one stem's options leave the next stem's draw alone
    assert [family_blends(cfg, s, [[], [3]])[1] for s in range(50)] == \
        [family_blends(cfg, s, [[1], [3]])[1] for s in range(50)]
    assert all(d == [None] * 3 for d in (family_blends(AugmentConfig(), s, others)
                                         for s in range(50)))


def test_blended_keeps_the_first_renderings_level() -> None:
    t = np.linspace(0, 1, 4410, dtype=np.float32)
    first, second = np.sin(440 * t).astype(np.float32), 0.01 * np.sin(660 * t)
    out = blended(first, second, 0.5)
    assert np.isclose(np.sqrt(np.mean(out ** 2)), np.sqrt(np.mean(first ** 2)), rtol=0.3)
    assert blended(first, np.zeros_like(first), 0.5) is first  # silence has no level


def test_blended_clips_are_deterministic_and_respect_exclusions() -> None:
    cfg = data(1.0, soundfont_per="instrument", soundfont_exclude=(("violin", FONTS[0]),))
    renderer = SampleRenderer(cfg)
    names = [find_soundfont(s).name for s in ("FluidR3_GM.sf2", *FONTS)]
    plain = SampleRenderer(data(0.0, soundfont_per="instrument",
                                soundfont_exclude=(("violin", FONTS[0]),)))
    train = [int(i) for i in split_indices(16, 5)["train"]]  # the clips that are augmented
    seen_violin = changed = 0
    for i in train:
        one, two = renderer.render(i, keep_audio=True), renderer.render(i, keep_audio=True)
        assert np.array_equal(one.audio, two.audio)
        info = one.record
        for inst, sf, blend in zip(info["instruments"], info["soundfonts"], info["blend"]):
            if inst == "violin":  # barred from TimGM6mb: nothing to blend it with
                seen_violin += 1
                assert blend is None
            else:
                assert blend[0] in names and blend[0] != sf and 0.25 <= blend[1] <= 0.75
        changed += not np.array_equal(one.audio, plain.render(i, keep_audio=True).audio)
    assert seen_violin and changed == len(train)


def test_identity_names_the_blend_only_when_it_is_on() -> None:
    off, on = SampleRenderer(data(0.0)).identity(), SampleRenderer(data(0.5)).identity()
    assert "family_blend" not in off["config"]["augment"]
    assert on["config"]["augment"]["family_blend"] == 0.5
    assert identity_digest(off) != identity_digest(on)


def test_a_share_outside_0_1_is_one_line() -> None:
    with pytest.raises(InstrlabError, match="family_blend must be in 0..1"):
        AugmentConfig(family_blend=1.5).validate()


def test_one_soundfont_has_nothing_to_blend(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "instrlab.cli", "main", "--n-samples", "16", "--epochs", "1",
         "--set", "data.extra_soundfonts=[]", "--augment-family-blend", "0.3"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"INSTRLAB_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
             "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "add --extra-soundfont" in lines[0], proc.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mlflow.db").exists()
