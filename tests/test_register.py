"""Instrument registers: wider pitch ranges drawn from a stream apart from the score's."""

from __future__ import annotations

import dataclasses

import pytest

from instrlab.errors import InstrlabError, PluginError
from instrlab.instruments import Instrument, InstrumentSet, instrument_set_from_dict
from instrlab.scores import ScoreConfig, generate_score

N_SCORES = 400


def test_share_zero_is_the_seeds_score(seed12: InstrumentSet) -> None:
    for cfg in (ScoreConfig(), ScoreConfig(pitch_shift=12)):
        zero = dataclasses.replace(cfg, register_share=0.0)
        for i in range(N_SCORES):
            assert generate_score(seed12, zero, 3, i) == generate_score(seed12, cfg, 3, i)


def without_pitches(score):  # noqa: ANN001, ANN201
    return (score.instruments, [dataclasses.replace(n, pitch=0) for n in score.notes])


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_registers_move_pitches_only(seed12: InstrumentSet, share: float) -> None:
    cfg = ScoreConfig(register_share=share)
    moved = 0
    for i in range(N_SCORES):
        base = generate_score(seed12, ScoreConfig(), 3, i)
        wide = generate_score(seed12, cfg, 3, i)
        assert without_pitches(wide) == without_pitches(base)
        assert wide == generate_score(seed12, cfg, 3, i)  # same seed, same score
        moved += any(a.pitch != b.pitch for a, b in zip(wide.notes, base.notes))
    assert moved > N_SCORES * share * 0.8


def test_share_one_draws_every_pitch_from_the_register(seed12: InstrumentSet) -> None:
    cfg = ScoreConfig(register_share=1.0)
    outside: dict[int, set[int]] = {i: set() for i in range(len(seed12))}
    for i in range(N_SCORES):
        for n in generate_score(seed12, cfg, 0, i).notes:
            spec = seed12.instruments[n.instrument]
            lo, hi = spec.register or spec.pitch_range
            assert lo <= n.pitch <= hi
            if not 60 <= n.pitch <= 72:
                outside[n.instrument].add(n.pitch)
    assert all(len(p) > 10 for p in outside.values()), outside
    assert min(min(p) for p in outside.values()) < 48
    assert max(max(p) for p in outside.values()) > 84


def test_pitch_shift_applies_after_the_register(seed12: InstrumentSet) -> None:
    wide = generate_score(seed12, ScoreConfig(register_share=1.0), 0, 5)
    shifted = generate_score(seed12, ScoreConfig(register_share=1.0, pitch_shift=-12), 0, 5)
    assert [n.pitch - 12 for n in wide.notes] == [n.pitch for n in shifted.notes]


def test_seed12_registers_cover_an_octave_around_the_protocol(seed12: InstrumentSet) -> None:
    for inst in seed12.instruments:
        assert inst.pitch_range == (60, 72)
        assert inst.register is not None and inst.wide_range == inst.register
        assert inst.register[0] <= 48 and inst.register[1] >= 84
    plain = Instrument("x", 0, pitch_range=(50, 60))
    assert plain.register is None and plain.wide_range == (50, 60)
    assert seed12.to_dict()["instruments"][0]["register"] == (36, 96)


def test_instruments_without_a_register_keep_their_range() -> None:
    iset = InstrumentSet("two", (Instrument("a", 0, register=(40, 90)), Instrument("b", 1)))
    for i in range(50):
        for n in generate_score(iset, ScoreConfig(register_share=1.0, max_instruments=2),
                                0, i).notes:
            assert 60 <= n.pitch <= 72 if n.instrument == 1 else 40 <= n.pitch <= 90


@pytest.mark.parametrize("share", [1.5, -0.1])
def test_bad_share_is_an_error(seed12: InstrumentSet, share: float) -> None:
    with pytest.raises(InstrlabError, match=rf"^register_share must be in 0..1, got {share}$"):
        ScoreConfig(register_share=share).validate(len(seed12))


@pytest.mark.parametrize(("register", "text"), [
    ((61, 90), "register 61..90"), ((40, 71), "register 40..71"), ((-1, 90), "register -1..90"),
    ((40, 128), "register 40..128"), ((80, 40), "register 80..40")])
def test_register_must_contain_the_pitch_range(register: tuple[int, int], text: str) -> None:
    with pytest.raises(InstrlabError, match=text) as info:
        Instrument("x", 0, register=register)
    assert "\n" not in str(info.value) and "contain the pitch range 60..72" in str(info.value)


def entry(**kw: object) -> dict[str, object]:
    return {"name": "x", "instruments": [{"name": "a", "program": 1, **kw}]}


def test_toml_register() -> None:
    iset = instrument_set_from_dict(entry(register=[36, 96]), "a.toml")
    assert iset.instruments[0].register == (36, 96)
    assert instrument_set_from_dict(entry(), "a.toml").instruments[0].register is None


@pytest.mark.parametrize(("register", "reason"), [
    ([1, 2, 3], r"register must be \[low, high\]"), ("low", "malformed instrument set"),
    (5, "malformed instrument set"), ([70, 80], "register 70..80 must lie in 0..127")])
def test_malformed_toml_register(register: object, reason: str) -> None:
    with pytest.raises(PluginError, match=reason) as info:
        instrument_set_from_dict(entry(register=register), "a.toml")
    assert str(info.value).startswith("a.toml: ") and "\n" not in str(info.value)


def test_evaluation_clips_keep_the_protocol_pitches() -> None:
    """Held-out and evaluate figures score the seed's pitch range, whatever training drew."""
    from instrlab.config import evaluation_data
    from instrlab.dataset import DatasetConfig

    data = DatasetConfig(score=ScoreConfig(register_share=0.5))
    assert evaluation_data(data).score.register_share == 0.0
    assert evaluation_data(data).seed == 1 and not evaluation_data(data).augment.active
