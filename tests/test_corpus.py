"""The real-music evaluation's corpus: music21's bundled quartets (no J. S. Bach), excerpts
in which every drawn instrument plays a part, its parse cache, and never training on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import with_corpus

from instrlab.errors import InstrlabError
from instrlab.instruments import InstrumentSet
from instrlab.registry import score_generators
from instrlab.scores import ScoreConfig, check_trainable, generate_score
from instrlab.scores.corpus import QUARTETS, _parse, load_corpus


def test_the_corpus_is_fixed_quartets_and_holds_no_bach() -> None:
    assert len(QUARTETS) == 16 and len(set(QUARTETS)) == 16
    assert {q.split("/")[0] for q in QUARTETS} == {"haydn", "mozart", "beethoven"}
    assert not [q for q in QUARTETS if "bach" in q.lower()]


def test_the_parsed_corpus_has_four_parts_per_movement(corpus_cache: Path) -> None:
    parsed = load_corpus()
    assert list(parsed) == list(QUARTETS)
    for name, parts in parsed.items():
        assert len(parts) == 4, name
        for part in parts:
            assert len(part) > 100
            assert all(0 <= p <= 127 and s < e for p, s, e in part)
    files = list(corpus_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"  # no temporary file left
    assert json.loads(files[0].read_text()) == json.loads(json.dumps(parsed))
    # parsed over the cores: each movement as one sequential parse gives it
    assert parsed[QUARTETS[5]] == json.loads(json.dumps(_parse(QUARTETS[5])))


@pytest.fixture
def corpus_scores(seed12: InstrumentSet, corpus_cache: Path) -> list:
    load_corpus()  # parsed once per session (corpus_cache)
    cfg = ScoreConfig(generators=(("corpus", 1.0),))
    return [generate_score(seed12, cfg, 1, i) for i in range(300)]


def test_excerpts_give_every_drawn_instrument_a_part_in_the_middle_register(
        corpus_scores: list, seed12: InstrumentSet) -> None:
    again = [generate_score(seed12, ScoreConfig(generators=(("corpus", 1.0),)), 1, i)
             for i in range(300)]
    assert corpus_scores == again  # the same excerpts for the same seed
    sizes = {len(s.instruments) for s in corpus_scores}
    assert sizes == {1, 2, 3, 4}
    for s in corpus_scores:
        for inst in s.instruments:
            ns = s.notes_of(inst)
            assert ns and ns[0].start < s.clip_seconds - 0.3 + 1e-9
            assert 60 <= np.median([n.pitch for n in ns]) <= 72, (s.index, inst)
            assert all(0 <= n.start < n.end <= s.clip_seconds for n in ns)
    # real music: most clips hold more notes than the seed's 5 per instrument
    notes = [len(s.notes) / len(s.instruments) for s in corpus_scores]
    assert np.median(notes) > 8, np.median(notes)


def test_the_corpus_is_for_evaluation_only() -> None:
    with pytest.raises(InstrlabError, match="'corpus' is for evaluation only"):
        check_trainable(ScoreConfig(generators=(("seed_random", 1.0), ("corpus", 0.1))))
    check_trainable(ScoreConfig(generators=(("seed_random", 1.0), ("melody", 1.0))))
    assert score_generators.entry("corpus").description.startswith("Real music, for evaluation")


def test_training_on_the_corpus_is_refused_even_through_the_api(
        corpus_cache: Path, tmp_path: Path, make_config) -> None:  # noqa: ANN001
    from instrlab.dataset import generate_dataset, open_dataset
    from instrlab.models.factory import ModelConfig
    from instrlab.pipeline import train_and_evaluate
    from instrlab.training import TrainConfig

    load_corpus()
    cfg = make_config(n_samples=8, score=ScoreConfig(generators=(("corpus", 1.0),)))
    ds = open_dataset(generate_dataset(cfg, out=tmp_path / "music", workers=0,
                                       progress=False))  # a corpus dataset, to evaluate on
    assert len(ds) == 8
    with pytest.raises(InstrlabError, match="for evaluation only"):
        train_and_evaluate(ds, ModelConfig(), TrainConfig(epochs=1))


def test_a_corrupt_cache_file_is_parsed_again(corpus_cache: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = with_corpus(corpus_cache, tmp_path / "cache")
    monkeypatch.setenv("INSTRLAB_CACHE", str(cache))
    small = ("mozart/k80/movement3.mxl",)
    first = load_corpus.__wrapped__(small)
    [path] = [p for p in (cache / "corpus").iterdir() if p.read_text().count("k80") == 1]
    path.write_text('{"half a fi')
    assert load_corpus.__wrapped__(small) == first
    assert json.loads(path.read_text()) == first


def test_without_music21_the_error_names_the_fix(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTRLAB_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "music21", None)  # import music21 raises ImportError
    with pytest.raises(InstrlabError, match="music21 is not installed; run scripts/setup.sh"):
        load_corpus.__wrapped__(("mozart/k80/movement3.mxl",))
