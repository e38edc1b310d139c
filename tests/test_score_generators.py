"""Score generators: a registry of them, each deterministic and within its instruments'
registers, mixtures in given shares, and the errors of bad names, weights and generators."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from test_cli import assert_one_line_error, run_cli

from instrlab.cli.options import show
from instrlab.dataset import DatasetConfig
from instrlab.dataset.config import build_identity, identity_digest
from instrlab.errors import InstrlabError, UnknownNameError
from instrlab.instruments import InstrumentSet
from instrlab.overrides import override
from instrlab.registry import score_generators
from instrlab.scores import SCORES_VERSION, Note, ScoreConfig, ScoreRequest, generate_score
from instrlab.scores.base import pick_generator
from instrlab.scores.theory import plays_chords

MUSIC = ("melody", "chords", "sustained", "ensemble")
N = 400


def notes(score):  # noqa: ANN001, ANN201
    return [(n.instrument, n.pitch, n.velocity, n.start, n.end) for n in score.notes]


def only(name: str, **kw: object) -> ScoreConfig:
    return ScoreConfig(generators=((name, 1.0),), **kw)  # type: ignore[arg-type]


def test_builtin_generators_are_registered() -> None:
    assert {"seed_random", "paced_random", *MUSIC} <= set(score_generators.names())


@pytest.mark.parametrize("name", (*MUSIC, "paced_random"))
@pytest.mark.parametrize("share", [0.0, 1.0])
def test_generator_is_deterministic_and_stays_in_its_register(
        seed12: InstrumentSet, name: str, share: float) -> None:
    cfg = only(name, register_share=share)
    first = [generate_score(seed12, cfg, 5, i) for i in range(N)]
    again = [generate_score(seed12, cfg, 5, i) for i in range(N)]
    other = [generate_score(seed12, cfg, 6, i) for i in range(N)]
    assert [notes(s) for s in first] == [notes(s) for s in again]
    assert sum(notes(a) != notes(b) for a, b in zip(first, other)) > 0.95 * N
    seen = set()
    for s in first:
        assert {n.instrument for n in s.notes} == set(s.instruments)
        for n in s.notes:
            spec = seed12.instruments[n.instrument]
            lo, hi = spec.wide_range if share else spec.pitch_range
            assert lo <= n.pitch <= hi, (name, spec.name, n.pitch)
            assert spec.velocity_range[0] <= n.velocity <= spec.velocity_range[1]
            assert 0 <= n.start < n.end <= s.clip_seconds
            seen.add(n.pitch)
    if share:  # the registers are used, not only the protocol's 60..72
        assert min(seen) < 55 and max(seen) > 80, (min(seen), max(seen))


@pytest.mark.parametrize("name", MUSIC)
def test_music_span_widens_each_part_around_its_range(seed12: InstrumentSet, name: str) -> None:
    plain = [generate_score(seed12, only(name), 5, i) for i in range(N)]
    assert [notes(s) for s in plain] == \
        [notes(generate_score(seed12, only(name, music_span=0), 5, i)) for i in range(N)]
    outside, total, middles = 0, 0, []
    for i in range(N):
        s = generate_score(seed12, only(name, music_span=7), 5, i)
        assert [notes(s)] == [notes(generate_score(seed12, only(name, music_span=7), 5, i))]
        for inst in s.instruments:
            lo, hi = seed12.instruments[inst].pitch_range
            pitches = [n.pitch for n in s.notes_of(inst)]
            assert all(lo - 7 <= p <= hi + 7 for p in pitches), (name, pitches)
            outside += sum(not lo <= p <= hi for p in pitches)
            total += len(pitches)
            middles.append(float(np.median(pitches)) - (lo + hi) / 2)
    assert 0.1 < outside / total < 0.5, outside / total  # the reach is used, the range still most
    assert abs(float(np.mean(middles))) < 2.0  # parts stay centred on the range


def test_music_span_is_checked_and_named_only_when_used(seed12: InstrumentSet) -> None:
    from instrlab.config import evaluation_data

    for span in (-1, 25):
        with pytest.raises(InstrlabError, match=rf"^music_span must be in 0..24 semitones, got "
                                                rf"{span}$"):
            ScoreConfig(music_span=span).validate(len(seed12))
    seed = DatasetConfig()
    identity = build_identity(seed, [], {}, {"instruments": []})
    assert "music_span" not in identity["config"]["score"]  # older datasets keep their names
    wide = override(seed, {"score.music_span": "7"})
    assert identity_digest(build_identity(wide, [], {}, {"instruments": []})) != \
        identity_digest(identity)
    assert evaluation_data(wide).score.music_span == 0  # it changes only music generators


def test_the_instrument_draw_does_not_depend_on_the_generator(seed12: InstrumentSet) -> None:
    for i in range(50):
        drawn = {generate_score(seed12, only(g), 0, i).instruments
                 for g in ("seed_random", "paced_random", *MUSIC)}
        assert len(drawn) == 1


def _intervals(cfg: ScoreConfig, seed12: InstrumentSet) -> tuple[np.ndarray, np.ndarray]:
    """Per instrument of each clip: pitch steps between successive notes, and the silences
    between them (seconds)."""
    steps, gaps = [], []
    for i in range(N):
        s = generate_score(seed12, cfg, 0, i)
        for inst in s.instruments:
            ns = s.notes_of(inst)
            steps += [abs(b.pitch - a.pitch) for a, b in zip(ns, ns[1:])]
            gaps += [b.start - a.end for a, b in zip(ns, ns[1:])]
    return np.array(steps), np.array(gaps)


def test_melody_moves_by_steps_and_legato_unlike_random_notes(seed12: InstrumentSet) -> None:
    steps, gaps = _intervals(only("melody"), seed12)
    rsteps, rgaps = _intervals(only("seed_random"), seed12)
    assert np.mean(steps <= 2) > 0.55 > np.mean(rsteps <= 2) + 0.1, (
        np.mean(steps <= 2), np.mean(rsteps <= 2))
    assert np.median(gaps) < 0.2 < np.median(rgaps), (np.median(gaps), np.median(rgaps))


def test_paced_random_notes_do_not_count_the_instruments(seed12: InstrumentSet) -> None:
    def per_clip(name: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Instruments and notes of each clip, and the notes of each instrument."""
        scores = [generate_score(seed12, only(name), 0, i) for i in range(N)]
        return (np.array([len(s.instruments) for s in scores]),
                np.array([len(s.notes) for s in scores]),
                [len(s.notes_of(i)) for s in scores for i in s.instruments])

    k, n, _ = per_clip("seed_random")
    assert np.all(n <= 5 * k)  # the seed: five notes each at most
    k, n, per_inst = per_clip("paced_random")
    assert np.quantile(per_inst, 0.1) <= 3 and np.quantile(per_inst, 0.9) >= 20, per_inst
    # a single instrument often plays more notes than four do in the seed's scores
    assert np.mean(n[k == 1] > 20) > 0.2


def test_chords_sound_together_on_instruments_that_play_them(seed12: InstrumentSet) -> None:
    together = Counter()
    for i in range(N):
        s = generate_score(seed12, only("chords"), 0, i)
        for inst in s.instruments:
            starts = Counter(n.start for n in s.notes_of(inst))
            if max(starts.values()) >= 2:
                together[plays_chords(seed12.instruments[inst].program)] += 1
    assert together[True] > 50 and together[False] == 0, together


def test_ensemble_parts_move_together(seed12: InstrumentSet) -> None:
    cfg = only("ensemble", min_instruments=2)
    for i in range(100):
        s = generate_score(seed12, cfg, 0, i)
        onsets = [{n.start for n in s.notes_of(inst)} for inst in s.instruments]
        assert all(o == onsets[0] for o in onsets), i


def test_a_mixture_draws_each_generator_in_its_share(seed12: InstrumentSet) -> None:
    cfg = ScoreConfig(generators=(("seed_random", 1.0), ("melody", 3.0)))
    picks = Counter(pick_generator(cfg, generate_score(seed12, cfg, 0, i).seed)[0]
                    for i in range(2000))
    assert abs(picks["melody"] / 2000 - 0.75) < 0.04, picks
    pure = only("seed_random")
    for i in range(200):  # a clip that draws seed_random is the seed's clip, note for note
        s = generate_score(seed12, cfg, 0, i)
        if pick_generator(cfg, s.seed)[0] == "seed_random":
            assert notes(s) == notes(generate_score(seed12, pure, 0, i))


@pytest.mark.parametrize(("generators", "message"), [
    ((("melodyy", 1.0),), "unknown score generator 'melodyy'. Did you mean 'melody'?"),
    ((("melody", 0.0),), "weight 0.0 must be a positive number"),
    ((("melody", float("nan")),), "weight nan must be a positive number"),
    ((("melody", 1.0), ("melody", 2.0)), "repeat a name"),
    ((), "none given"),
])
def test_bad_generator_settings_are_one_line_errors(generators: tuple, message: str) -> None:
    with pytest.raises(InstrlabError, match=message.replace("(", r"\(").replace("?", r"\?")):
        ScoreConfig(generators=generators).validate(12)
    if generators and generators[0][0] == "melodyy":
        with pytest.raises(UnknownNameError):
            ScoreConfig(generators=generators).validate(12)


def test_a_generator_that_leaves_an_instrument_silent_is_an_error(
        seed12: InstrumentSet) -> None:
    @score_generators.register("test_silent")
    def silent(req: ScoreRequest) -> list[Note]:
        return [Note(req.instruments[0], 60, 80, 0.0, 1.0)]

    @score_generators.register("test_late")
    def late(req: ScoreRequest) -> list[Note]:  # every note after the clip ends
        return [Note(i, 60, 80, req.cfg.clip_seconds + 1, req.cfg.clip_seconds + 2)
                for i in req.instruments]

    @score_generators.register("test_stranger")
    def stranger(req: ScoreRequest) -> list[Note]:
        other = next(i for i in range(12) if i not in req.instruments)
        return [Note(i, 60, 80, 0.0, 1.0) for i in (*req.instruments, other)]

    try:
        cfg = only("test_silent", min_instruments=2)
        with pytest.raises(InstrlabError, match="'test_silent' left instruments .* silent"):
            generate_score(seed12, cfg, 0, 0)
        with pytest.raises(InstrlabError, match="'test_late' left instruments"):
            generate_score(seed12, only("test_late"), 0, 0)
        with pytest.raises(InstrlabError, match="'test_stranger' wrote a note for instrument"):
            generate_score(seed12, only("test_stranger"), 0, 0)
    finally:
        for name in ("test_silent", "test_late", "test_stranger"):
            score_generators.unregister(name)


def test_generators_come_from_text_and_toml_shaped_data() -> None:
    cfg = override(DatasetConfig(), {"score.generators": "seed_random=0.5 melody=1.5"})
    assert cfg.score.generators == (("seed_random", 0.5), ("melody", 1.5))
    cfg = override(DatasetConfig(), {"score.generators": [["chords", 2], ["melody", 1]]})
    assert cfg.score.generators == (("chords", 2.0), ("melody", 1.0))
    back = DatasetConfig.from_dict(cfg.to_dict())
    assert back == cfg
    shown = show(cfg.score.generators)  # as `instrlab config` and --help print it
    assert shown == "chords=2 melody=1"
    assert override(DatasetConfig(), {"score.generators": shown}) == cfg


def test_only_a_changed_generator_list_changes_the_dataset_identity() -> None:
    def digest(cfg: DatasetConfig) -> str:
        return identity_digest(build_identity(cfg, [], {}, {"instruments": []}))

    seed = DatasetConfig()
    assert "generators" not in build_identity(seed, [], {}, {"instruments": []})["config"]["score"]
    mixed = override(seed, {"score.generators": "seed_random=1 melody=1"})
    assert digest(mixed) != digest(seed)
    # music datasets carry the generators' version, so changed generators rename them
    score = build_identity(mixed, [], {}, {"instruments": []})["config"]["score"]
    assert score["version"] == SCORES_VERSION
    assert digest(override(seed, {"score.generators": "seed_random=1"})) == digest(seed)


def test_command_line_names_an_unknown_generator(isolated) -> None:  # noqa: ANN001
    proc = run_cli(["generate", "--n-samples", "4", "--score-generators", "seed_random=1",
                    "chord=1"], isolated)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "unknown score generator 'chord'",
                          "Did you mean 'chords'?")
    assert not [p for p in isolated.rglob("*") if p.is_file()], "nothing may be written"


def test_command_line_refuses_an_impossible_music_span(isolated) -> None:  # noqa: ANN001
    proc = run_cli(["generate", "--n-samples", "4", "--music-span", "30"], isolated)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "music_span must be in 0..24 semitones, got 30")
    assert not [p for p in isolated.rglob("*") if p.is_file()], "nothing may be written"


def test_a_dataset_config_of_another_version_is_a_one_line_error() -> None:
    data = DatasetConfig().to_dict()
    data["score"]["sections"] = 3  # a score setting this instrlab does not know
    with pytest.raises(InstrlabError, match=r"does not fit this instrlab .*'sections'.*rebuild"):
        DatasetConfig.from_dict(data)
