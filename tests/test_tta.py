"""Averaging logits over frequency-shifted inputs: what it computes, how a model keeps it,
and a real tiny training run that predicts with it."""

from __future__ import annotations

import json
from dataclasses import asdict

import mlflow
import numpy as np
import pytest
import torch
from conftest import tracked_store
from test_model_safety import TINY, one_error_line

from instrlab.cli import main
from instrlab.errors import InstrlabError
from instrlab.features.shift import shift_spectra
from instrlab.models.factory import ModelConfig, build_model
from instrlab.models.tta import ShiftAveraged
from instrlab.predict import check_meta, load_model, rebuild

SHAPE, N = (32, 20), 5
SMALL = {"width": 8, "n_blocks": 1}


def test_eval_mode_averages_the_logits_of_shifted_inputs() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig("mel_cnn", SMALL, (-3, 0, 2)), SHAPE, N).eval()
    assert isinstance(model, ShiftAveraged)
    x = torch.rand(4, *SHAPE) * -80
    x[1] -= 10  # clips with different floors: each fills vacated bins with its own
    floor = x.flatten(1).amin(dim=1)
    with torch.no_grad():
        want = sum(model.net(shift_spectra(x, torch.full((4,), s), floor)) for s in (-3, 0, 2))
        assert torch.allclose(model(x), want / 3, atol=1e-5)
        assert not torch.allclose(model(x), model.net(x), atol=1e-3)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(1)
    assert torch.equal(a, model.net(x))  # training sees the input alone


def test_fill_may_be_one_value_per_clip() -> None:
    x = torch.arange(4.0).view(1, 4, 1).repeat(2, 1, 1)
    out = shift_spectra(x, torch.tensor([2, -1]), torch.tensor([-5.0, -7.0]))
    assert out[0, :, 0].tolist() == [-5.0, -5.0, 0.0, 1.0]
    assert out[1, :, 0].tolist() == [1.0, 2.0, 3.0, -7.0]


def test_a_saved_model_is_rebuilt_with_its_shifts_and_an_older_one_without() -> None:
    cfg = ModelConfig("mel_cnn", SMALL, (-2, 0, 2))
    model = build_model(cfg, SHAPE, N).eval()
    meta = json.loads(json.dumps({"model": asdict(cfg), "input_shape": list(SHAPE),
                                  "instrument_names": [f"i{k}" for k in range(N)]}))
    assert meta["model"]["tta_shifts"] == [-2, 0, 2]
    again = rebuild(meta, model.state_dict(), "m")
    x = torch.rand(3, *SHAPE) * -80
    with torch.no_grad():
        assert isinstance(again, ShiftAveraged) and torch.allclose(again(x), model(x))
    plain = build_model(ModelConfig("mel_cnn", SMALL), SHAPE, N)
    old = {**meta, "model": {"name": "mel_cnn", "params": SMALL}}  # saved before the field
    assert not isinstance(rebuild(old, plain.state_dict(), "m"), ShiftAveraged)


@pytest.mark.parametrize("shifts", [[99], [1, 1], ["2"], [True], "0"])
def test_crafted_shifts_in_a_model_are_rejected(shifts: object) -> None:
    meta = {"instrument_names": ["a"], "features": "logmel", "feature_params": {},
            "sample_rate": 44100, "clip_seconds": 5, "input_shape": [32, 20],
            "model": {"name": "mel_cnn", "params": {}, "tta_shifts": shifts},
            "thresholds": [0.5], "dataset_digest": ""}
    assert check_meta(meta) is not None and check_meta(meta).startswith("model must be")
    meta["model"]["tta_shifts"] = [-1, 0, 1]
    assert check_meta(meta) is None


@pytest.mark.parametrize(("words", "message"), [
    (["99"], "tta_shifts must be distinct whole bins in -32..32"),
    (["1", "1"], "tta_shifts must be distinct whole bins"),
    (["x"], "'x' is not a valid"),
])
def test_bad_tta_shifts_on_the_command_line_are_one_line(
        words: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "--tta-shifts", *words]) == 2
    one_error_line(capsys.readouterr().err, message)


@pytest.mark.parametrize("shifts", [(40,), (0, 0)])
def test_impossible_shifts_are_a_config_error(shifts: tuple[int, ...]) -> None:
    with pytest.raises(InstrlabError, match="tta_shifts must be distinct whole bins"):
        ModelConfig(tta_shifts=shifts)


def test_training_with_shifts_predicts_with_them(tmp_path, capsys) -> None:
    mp, _ = tracked_store(tmp_path)
    try:
        args = ["train", *TINY, "--spec-shift-bins", "2", "--tta-shifts", "-2", "0", "2"]
        assert main(args) == 0
        run = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list")[0]
        assert run.data.params["model.tta_shifts"] == "(-2, 0, 2)"
        loaded = load_model(run.info.run_id)
        assert isinstance(loaded.model, ShiftAveraged) and loaded.model.shifts == (-2, 0, 2)
        feats = np.random.default_rng(0).uniform(-80, 0, (2, *loaded.meta["input_shape"]))
        served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(
            feats.astype(np.float32))
        with torch.no_grad():
            own = torch.sigmoid(loaded.model(torch.from_numpy(feats.astype(np.float32))))
        np.testing.assert_allclose(served.to_numpy(), own.numpy(), atol=1e-6)
    finally:
        mp.undo()


def test_fit_validates_by_one_pass_and_tunes_thresholds_on_the_averaged_predictions() -> None:
    from instrlab.training import TrainConfig, fit
    from instrlab.training.loop import predict_proba
    from instrlab.training.metrics import tune_thresholds

    gen = np.random.default_rng(0)
    feats = gen.uniform(-80, 0, (48, *SHAPE)).astype(np.float16)
    labels = (gen.random((48, N)) < 0.4).astype(np.uint8)
    train, val = np.arange(32), np.arange(32, 48)
    torch.manual_seed(0)
    model = build_model(ModelConfig("mel_cnn", SMALL, (-2, 0, 2)), SHAPE, N)
    calls = []
    forward = model.forward
    model.forward = lambda x: calls.append(len(x)) or forward(x)  # averaged passes only
    result = fit(model, feats, labels, train, val,
                 TrainConfig(epochs=2, batch_size=8, num_threads=1), progress=False)
    # epochs validate by the network alone; the averaged model sees validation once, at the end
    assert calls.count(len(val)) == 1 and len(result.history) == 2
    del model.forward
    want = tune_thresholds(labels[val], predict_proba(model, feats, val))
    np.testing.assert_allclose(result.thresholds, want)
