"""The test split keeps the seed's protocol (one soundfont, pitch_range) while training clips
vary: real, tiny multi-soundfont builds with wide registers."""

from __future__ import annotations

import json

import pytest

from instrlab.dataset import DatasetConfig, generate_dataset, open_dataset, split_indices
from instrlab.dataset.config import identity_digest
from instrlab.dataset.render import SampleRenderer
from instrlab.scores import ScoreConfig
from instrlab.synth.augment import AugmentConfig

PRIMARY, EXTRA = "FluidR3_GM.sf2", "TimGM6mb.sf2"


def config(**kw: object) -> DatasetConfig:
    base: dict[str, object] = {
        "n_samples": 40, "seed": 3, "augment": AugmentConfig(), "extra_soundfonts": (EXTRA,),
        "soundfont_per": "instrument", "score": ScoreConfig(clip_seconds=1.0, register_share=1.0)}
    return DatasetConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, list[dict]]:
    out = tmp_path_factory.mktemp("protocol")
    return {on: open_dataset(generate_dataset(config(test_protocol=on), out=out / str(on),
                                              workers=1, progress=False)).manifest()
            for on in (True, False)}


def summary(records: list[dict]) -> tuple[set[str], set[int]]:
    return ({sf for r in records for sf in r["soundfonts"]},
            {n[1] for r in records for n in r["notes"]})


def test_test_clips_keep_the_seeds_protocol(builds: dict[bool, list[dict]]) -> None:
    test = set(split_indices(40, 3)["test"].tolist())
    records = builds[True]
    fonts, pitches = summary([r for r in records if r["index"] in test])
    assert fonts == {PRIMARY} and pitches <= set(range(60, 73)), (fonts, pitches)
    fonts, pitches = summary([r for r in records if r["index"] not in test])
    assert fonts == {PRIMARY, EXTRA} and not pitches <= set(range(60, 73)), (fonts, pitches)
    # training clips are those of test_protocol off; test clips differ in pitch only
    for on, off in zip(records, builds[False]):
        if on["index"] not in test:
            assert on == off
        else:
            assert on["instruments"] == off["instruments"]
            assert [n[:1] + n[2:] for n in on["notes"]] == [n[:1] + n[2:] for n in off["notes"]]


def test_without_test_protocol_test_clips_vary_like_training(
        builds: dict[bool, list[dict]]) -> None:
    test = set(split_indices(40, 3)["test"].tolist())
    fonts, pitches = summary([r for r in builds[False] if r["index"] in test])
    assert fonts == {PRIMARY, EXTRA} and not pitches <= set(range(60, 73)), (fonts, pitches)


def digest(cfg: DatasetConfig) -> str:
    return identity_digest(SampleRenderer(cfg).identity())


def test_identity_counts_test_protocol_only_where_it_changes_clips() -> None:
    plain = ScoreConfig(clip_seconds=1.0)
    # nothing to hold back: the name of a dataset of before test_protocol and registers
    assert digest(config(extra_soundfonts=(), score=plain)) == digest(
        config(extra_soundfonts=(), score=plain, test_protocol=False))
    assert "register" not in json.dumps(
        SampleRenderer(config(extra_soundfonts=(), score=plain)).identity())
    assert digest(config()) != digest(config(test_protocol=False))
    assert digest(config(extra_soundfonts=())) != digest(
        config(extra_soundfonts=(), test_protocol=False))
    assert digest(config()) != digest(config(score=ScoreConfig(clip_seconds=1.0,
                                                               register_share=0.5)))


def test_config_round_trip_keeps_the_new_fields() -> None:
    cfg = config(test_protocol=False)
    again = DatasetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.score.register_share == 1.0 and not again.test_protocol


def test_test_clips_keep_the_seeds_random_notes_when_training_plays_music(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from instrlab.instruments import get_instrument_set
    from instrlab.scores import generate_score

    cfg = config(extra_soundfonts=(), score=ScoreConfig(
        clip_seconds=1.0, generators=(("melody", 1.0), ("chords", 1.0))))
    out = tmp_path_factory.mktemp("music")
    records = open_dataset(generate_dataset(cfg, out=out, workers=1, progress=False)).manifest()
    test = set(split_indices(40, 3)["test"].tolist())
    seed12 = get_instrument_set("seed12")
    seed_cfg = ScoreConfig(clip_seconds=1.0)
    for r in records:
        seed_notes = [[seed12.names[n.instrument], n.pitch, n.velocity]
                      for n in generate_score(seed12, seed_cfg, 3, r["index"]).notes]
        played = [n[:3] for n in r["notes"]]
        assert (played == seed_notes) == (r["index"] in test), r["index"]
