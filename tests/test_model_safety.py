"""Loading a model runs no code from the model store (issue 13, items 1 and 2).

A real tiny training run in a real SQLite MLflow store; crafted model directories carry a
harmless payload (a pickle that creates a marker file) wherever a loader might unpickle.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
from conftest import tracked_store
from test_pipeline import run_cli

from instrlab.cli import main
from instrlab.errors import InstrlabError
from instrlab.predict import (
    ARTIFACTS,
    LEGACY_PICKLE,
    MODEL_META,
    WEIGHTS,
    load_model,
    model_uri,
    predict_audio,
    read_audio,
    summarise,
)

TINY = ["--n-samples", "32", "--epochs", "1", "--batch-size", "16", "--workers", "1",
        "--no-progress", "--heldout-samples", "0"]


class Touch:
    """Unpickling this creates ``marker``: it stands for any code a pickle may run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny `instrlab train` run, its model as a local directory, and a WAV file."""
    root = tmp_path_factory.mktemp("safety")
    mp, uri = tracked_store(root)
    assert main(["train", *TINY, "--run-name", "tiny"]) == 0
    run = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list")[0]
    run_id = run.info.run_id
    model_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model",
                                                         dst_path=str(root / "download")))
    wav = root / "clip.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1,
             44100)
    yield {"root": root, "uri": uri, "run_id": run_id, "model_dir": model_dir, "wav": wav}
    mp.undo()


@pytest.fixture(scope="module")
def reference(store: dict) -> dict:
    """The run's metadata and its probabilities for the WAV file, loaded in this process."""
    loaded = load_model(store["run_id"])
    audio = read_audio(store["wav"], loaded.meta["sample_rate"])
    return {"meta": loaded.meta, "probs": summarise(predict_audio(loaded, audio))}


def copy_model(store: dict, name: str) -> Path:
    """A copy of the logged model directory in the working directory, to tamper with."""
    dst = store["root"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(store["model_dir"], dst)
    return dst


def printed_probabilities(out: str) -> dict[str, float]:
    """Instrument label -> probability, read from `instrlab predict --all`'s table."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    return {r[0]: float(r[1]) for r in rows if len(r) == 4 and re.fullmatch(r"[\d.]+", r[1])}


def assert_same_probabilities(out: str, reference: dict) -> None:
    labels = reference["meta"]["instrument_labels"]
    printed = printed_probabilities(out)
    assert set(printed) == set(labels), out
    for label, p in zip(labels, reference["probs"]):
        assert printed[label] == pytest.approx(p, abs=0.0006), label


def one_error_line(err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("instrlab: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ---------------------------------------------------------------- (a) the stored model


def test_logged_model_is_weights_and_json_with_signature(store: dict) -> None:
    from mlflow.models import Model

    files = {p.relative_to(store["model_dir"]).as_posix()
             for p in store["model_dir"].rglob("*") if p.is_file()}
    assert {f"{ARTIFACTS}/{WEIGHTS}", f"{ARTIFACTS}/{MODEL_META}", "MLmodel"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pth", ".pt"))], files
    info = Model.load(str(store["model_dir"]))
    assert info.signature is not None and info.saved_input_example_info is not None
    pyfunc = info.flavors["python_function"]
    assert "model_code_path" in pyfunc and "python_model" not in pyfunc  # no cloudpickle
    meta = json.loads((store["model_dir"] / ARTIFACTS / MODEL_META).read_text())
    assert meta["model"]["name"] == "mel_cnn" and len(meta["instrument_names"]) == 12


def test_instrlab_load_path_unpickles_nothing(store: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("instrlab's load path unpickled something")

    for owner, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                        (torch, "load")):
        monkeypatch.setattr(owner, name, refuse)
    loaded = load_model(store["run_id"])
    assert not loaded.pickled and loaded.run_id == store["run_id"]


def test_predict_cli_round_trip_matches_in_process(store: dict, reference: dict) -> None:
    proc = run_cli(["predict", "--model", store["run_id"], "--all", str(store["wav"])], store)
    assert proc.returncode == 0, proc.stderr
    assert_same_probabilities(proc.stdout, reference)


def test_pyfunc_users_get_the_same_probabilities(store: dict) -> None:
    from instrlab.features import get_extractor
    from instrlab.predict import windows

    loaded = load_model(store["run_id"])
    meta = loaded.meta
    extractor = get_extractor(meta["features"], sample_rate=meta["sample_rate"],
                              clip_seconds=meta["clip_seconds"], **meta["feature_params"])
    audio = read_audio(store["wav"], meta["sample_rate"])
    feats = np.stack([extractor(w) for w in windows(audio, extractor.n_samples)])
    feats = feats.astype(np.float16).astype(np.float32)
    served = mlflow.pyfunc.load_model(f"runs:/{store['run_id']}/model").predict(feats)
    assert list(served.columns) == meta["instrument_names"]
    np.testing.assert_allclose(served.to_numpy(), predict_audio(loaded, audio, extractor),
                               atol=1e-6)


HIDE_INSTRLAB = """
import sys
# the installed (editable) instrlab is hidden: only the model's own copy can be imported
sys.meta_path[:] = [f for f in sys.meta_path if "instrlab" not in repr(f)]
try:
    import instrlab
    raise SystemExit("instrlab is still importable from " + instrlab.__file__)
except ImportError:
    pass
import json
import numpy as np
import mlflow.pyfunc
import instrlab.serving  # noqa: F401 - must fail: the model's code is not on the path yet
"""


def test_served_model_pins_its_requirements_and_names_no_index_package(store: dict) -> None:
    from importlib.metadata import version

    from packaging.version import Version

    lines = (store["model_dir"] / "requirements.txt").read_text().split()
    pins = dict(line.split("==") for line in lines)
    assert len(pins) == len(lines), lines  # every requirement pinned
    assert "instrlab" not in pins and {"torch", "safetensors", "mlflow"} <= set(pins), pins
    for name, pinned in pins.items():
        assert pinned == Version(version(name)).public, (name, pinned)


def test_served_model_runs_on_its_own_copy_of_instrlab(store: dict, reference: dict,
                                                       tmp_path: Path) -> None:
    """Without instrlab installed, the pyfunc model loads from the code it carries."""
    import subprocess
    import sys

    shape = (2, *reference["meta"]["input_shape"])
    feats = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", feats)
    hidden = subprocess.run([sys.executable, "-c", HIDE_INSTRLAB], cwd=tmp_path,
                            capture_output=True, text=True)
    assert "No module named 'instrlab'" in hidden.stderr, hidden.stderr
    script = HIDE_INSTRLAB.replace("import instrlab.serving", "#") + (
        f"model = mlflow.pyfunc.load_model({str(store['model_dir'])!r})\n"
        "out = model.predict(np.load('x.npy')).to_numpy()\n"
        "print(json.dumps({'file': sys.modules['instrlab'].__file__, 'p': out.tolist()}))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    served = json.loads(proc.stdout.splitlines()[-1])
    assert Path(served["file"]).is_relative_to(store["model_dir"] / "code"), served["file"]
    local = mlflow.pyfunc.load_model(str(store["model_dir"])).predict(feats).to_numpy()
    np.testing.assert_allclose(np.array(served["p"]), local, atol=1e-6)


# ---------------------------------------------------------------- (b) a malicious model


@pytest.fixture(scope="module")
def legacy_dir(store: dict) -> Path:
    """The run's model as an older instrlab logged it: mlflow.pytorch, pickled."""
    import mlflow.pytorch

    loaded = load_model(store["run_id"])
    meta_file = store["root"] / "legacy_meta" / MODEL_META
    meta_file.parent.mkdir(exist_ok=True)
    meta_file.write_text(json.dumps(loaded.meta))
    out = store["root"] / "legacy"
    mlflow.pytorch.save_model(loaded.model, str(out), serialization_format="pickle",
                              extra_files=[str(meta_file)], pip_requirements=["torch"])
    assert (out / LEGACY_PICKLE).is_file()
    return out


def plant_payload(model_dir: Path, marker: Path, where: tuple[str, ...]) -> None:
    """Put the marker-creating payload in ``model_dir`` wherever ``where`` says."""
    import torch

    if "legacy" in where:
        torch.save(Touch(marker), model_dir / LEGACY_PICKLE)
    if "weights" in where:
        (model_dir / ARTIFACTS).mkdir(exist_ok=True)
        if not (model_dir / ARTIFACTS / MODEL_META).exists():
            shutil.copy(model_dir / "extra_files" / MODEL_META, model_dir / ARTIFACTS)
        (model_dir / ARTIFACTS / WEIGHTS).write_bytes(pickle.dumps(Touch(marker)))
    if "pyfunc" in where:  # what only mlflow.pyfunc.load_model would read
        (model_dir / "python_model.pkl").write_bytes(pickle.dumps(Touch(marker)))
        (model_dir / "serving.py").write_text(f"open({str(marker)!r}, 'w').close()\n")


def test_the_payload_is_live(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "ran"
    torch.save(Touch(marker), tmp_path / "model.pth")
    torch.load(tmp_path / "model.pth", weights_only=False)  # what the old loader did
    assert marker.exists()


@pytest.mark.parametrize("where", [("legacy",), ("weights", "pyfunc"),
                                   ("legacy", "weights", "pyfunc")])
def test_malicious_model_runs_no_code(store: dict, legacy_dir: Path, where: tuple[str, ...],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = store["model_dir"] if where == ("weights", "pyfunc") else legacy_dir
    evil = store["root"] / "evil"
    shutil.rmtree(evil, ignore_errors=True)
    shutil.copytree(base, evil)
    marker = store["root"] / "marker"
    plant_payload(evil, marker, where)
    capsys.readouterr()
    assert main(["predict", "--model", "./evil", str(store["wav"])]) == 2
    one_error_line(capsys.readouterr().err, "'./evil'")
    assert main(["evaluate", "./evil", "--no-progress", "--workers", "1"]) == 2
    one_error_line(capsys.readouterr().err, "'./evil'")
    assert not marker.exists()


def test_malicious_model_in_a_fresh_process(store: dict, legacy_dir: Path) -> None:
    evil = store["root"] / "evil_cli"
    shutil.rmtree(evil, ignore_errors=True)
    shutil.copytree(legacy_dir, evil)
    marker = store["root"] / "marker_cli"
    plant_payload(evil, marker, ("legacy", "weights", "pyfunc"))
    proc = run_cli(["predict", "--model", "./evil_cli", str(store["wav"])], store)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, f"{WEIGHTS} is not a valid safetensors file")
    assert not marker.exists()



def test_malicious_model_in_a_shared_store_runs_no_code(store: dict, legacy_dir: Path) -> None:
    """The threat itself: someone with write access to the shared store logs an old-style
    pickled model carrying the payload into a run's artifacts; `instrlab predict --model
    RUN_ID` and `instrlab evaluate RUN_ID` (real processes, the run's MLflow store) refuse
    it in one line naming the trust flag, and nothing runs. With the flag, the payload
    does run: the store really hands the pickle to the loader."""
    evil = store["root"] / "evil_run"
    shutil.rmtree(evil, ignore_errors=True)
    shutil.copytree(legacy_dir, evil)
    marker = store["root"] / "marker_run"
    plant_payload(evil, marker, ("legacy",))
    with mlflow.start_run(run_name="planted") as run:
        mlflow.log_artifacts(str(evil), artifact_path="model")
    run_id = run.info.run_id
    for args in (["predict", "--model", run_id, str(store["wav"])],
                 ["evaluate", run_id, "--no-progress", "--workers", "1"]):
        proc = run_cli(args, store)
        assert proc.returncode == 2, proc.stderr
        one_error_line(proc.stderr, repr(run_id), "pickle", "--trust-pickled-model")
        assert not marker.exists(), args
    proc = run_cli(["predict", "--model", run_id, "--trust-pickled-model", str(store["wav"])],
                   store)
    assert marker.exists(), proc.stderr

# ---------------------------------------------------------------- (c) old pickled models


def test_old_pickled_model_needs_the_trust_flag(store: dict, legacy_dir: Path,
                                                reference: dict,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for args in (["predict", "--model", "./legacy", str(store["wav"])],
                 ["evaluate", "./legacy", "--no-progress"]):
        assert main(args) == 2
        one_error_line(capsys.readouterr().err, "pickle", "instrlab main",
                       "--trust-pickled-model")
    assert main(["predict", "--model", "./legacy", "--trust-pickled-model", "--all",
                 str(store["wav"])]) == 0
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("instrlab: warning: "), out.err
    assert_same_probabilities(out.out, reference)
    assert load_model("./legacy", trust_pickled=True).pickled


# ---------------------------------------------------------------- (d) what --model names


def test_a_folder_named_like_the_run_id_does_not_shadow_the_run(
        store: dict, reference: dict, capsys: pytest.CaptureFixture[str]) -> None:
    shadow = copy_model(store, store["run_id"])  # in the working directory
    marker = store["root"] / "marker_shadow"
    plant_payload(shadow, marker, ("weights", "pyfunc"))
    try:
        capsys.readouterr()
        assert main(["predict", "--model", store["run_id"], "--all", str(store["wav"])]) == 0
        assert_same_probabilities(capsys.readouterr().out, reference)
        assert load_model(store["run_id"]).uri == f"runs:/{store['run_id']}/model"
        with pytest.raises(InstrlabError, match="not a valid safetensors file"):
            load_model(f"./{store['run_id']}")  # the folder only when written as a path
        assert not marker.exists()
    finally:
        shutil.rmtree(shadow)


def test_model_references_read_one_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydir").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "weights.pth").write_bytes(b"")
    run_id = "0123456789abcdef0123456789abcdef"
    (tmp_path / run_id).mkdir()
    here = str(tmp_path / "mydir")
    assert model_uri(run_id) == f"runs:/{run_id}/model"
    assert model_uri(f"runs:/{run_id}/model") == f"runs:/{run_id}/model"
    assert model_uri("models:/tiny/3") == "models:/tiny/3"
    assert model_uri("s3://bucket/model") == "s3://bucket/model"
    assert model_uri("tiny") == "models:/tiny/latest"
    for ref in ("./mydir", here, f"file://{here}", "sub/../mydir"):
        assert model_uri(ref) == str(tmp_path.resolve() / "mydir"), ref
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_uri("~/mydir") == str(tmp_path.resolve() / "mydir")
    with pytest.raises(InstrlabError, match=r"ambiguous.*pass \./mydir .*models:/mydir/latest"):
        model_uri("mydir")
    with pytest.raises(InstrlabError, match="ambiguous"):
        model_uri("weights.pth")
    with pytest.raises(InstrlabError, match="is a file"):
        model_uri("./weights.pth")
    with pytest.raises(InstrlabError, match="does not exist"):
        model_uri("./nothing")


# ---------------------------------------------------------------- (e) broken model files


def tampered_meta(meta: dict, **changes: object) -> str:
    return json.dumps({**meta, **changes})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda meta: "{}", "instrument_names is missing"),
        (lambda meta: "{not json", "not valid JSON"),
        (lambda meta: "[1, 2]", "not a JSON object"),
        (lambda meta: "", "not valid JSON"),
        (lambda meta: tampered_meta(meta, thresholds="high"), "thresholds must be a list of 12"),
        (lambda meta: tampered_meta(meta, thresholds=[0.5] * 3), "thresholds must be a list"),
        (lambda meta: tampered_meta(meta, sample_rate=True), "sample_rate must be a positive"),
        (lambda meta: tampered_meta(meta, input_shape=[128, "431"]), "input_shape must be"),
        (lambda meta: tampered_meta(meta, model="mel_cnn"), "model must be an object"),
        (lambda meta: tampered_meta(meta, model={"name": "mel_cnm", "params": {}}),
         "unknown model 'mel_cnm'"),
        (lambda meta: tampered_meta(meta, model={"name": "mel_cnn", "params": {"bogus": 1}}),
         "rejected its parameters"),
        (lambda meta: tampered_meta(meta, min_labels=-1), "min_labels must be an integer"),
        (lambda meta: json.dumps({k: v for k, v in meta.items() if k != "dataset_digest"}),
         "dataset_digest is missing"),
    ],
)
def test_broken_metadata_is_one_line_error(store: dict, make: object, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = copy_model(store, "bad_meta")
    meta_path = bad / ARTIFACTS / MODEL_META
    meta_path.write_text(make(json.loads(meta_path.read_text())))  # type: ignore[operator]
    capsys.readouterr()
    assert main(["predict", "--model", "./bad_meta", str(store["wav"])]) == 2
    one_error_line(capsys.readouterr().err, "'./bad_meta'", message)


@pytest.mark.parametrize(("change", "message"), [
    ("drop", "missing"), ("extra", "unexpected 'extra.weight'"), ("reshape", "has shape"),
])
def test_weights_that_do_not_fit_are_one_line_error(store: dict, change: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    bad = copy_model(store, "bad_weights")
    state = load_file(str(bad / ARTIFACTS / WEIGHTS))
    first = next(iter(state))
    if change == "drop":
        del state[first]
    elif change == "extra":
        state["extra.weight"] = torch.zeros(3)
    else:
        state[first] = torch.zeros(state[first].numel() + 1)
    save_file(state, str(bad / ARTIFACTS / WEIGHTS))
    capsys.readouterr()
    assert main(["predict", "--model", "./bad_weights", str(store["wav"])]) == 2
    one_error_line(capsys.readouterr().err, "do not fit model 'mel_cnn'", message)
