"""Loading logged models and predicting instruments in audio files of any length.

A logged model is its weights (:data:`WEIGHTS`, safetensors) and :data:`MODEL_META`
(JSON), rebuilt through the model registry: nothing is unpickled on this load path,
except a model that an older instrlab logged as a pickle, and only when the user trusts it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from instrlab.audio import (
    AudioStream,
    read_audio,  # noqa: F401  (re-exported: it lived here)
    windows,
)
from instrlab.errors import InstrlabError, first_line
from instrlab.models.factory import valid_shifts

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # two letters at least: C:/ is a path
MODEL_META = "instrlab_model.json"
WEIGHTS = "model.safetensors"
ARTIFACTS = "artifacts"  # where an MLflow pyfunc model keeps its artifacts
LEGACY_PICKLE = Path("data") / "model.pth"  # mlflow.pytorch's pickle, as instrlab logged it
LEGACY_META = Path("extra_files") / MODEL_META
RETRAIN = "retrain it with `instrlab main ...`"
BATCH = 32  # windows per forward pass


@dataclass
class LoadedModel:
    """A model with what it needs to read audio: features, instruments, thresholds."""

    model: Any
    meta: dict[str, Any]
    uri: str
    run_id: str | None
    pickled: bool = False  # an old pickled model, loaded because the user trusted it

    @property
    def min_labels(self) -> int:
        """Fewest instruments named per clip (0 for models logged before the option)."""
        return int(self.meta.get("min_labels", 0))


def model_uri(ref: str) -> str:
    """Where ``ref`` points, read one way only, so that a folder never stands in for a run.

    32 hex digits: a run; ``runs:/``, ``models:/`` or another ``scheme:/`` URI: itself; a
    path (absolute, ``./dir``, ``~/dir``, anything with a ``/``, or ``file:``): a local
    model directory; any other word: a registered model name, unless a file or folder of
    that name is here (ambiguous: pass ``./NAME`` or ``models:/NAME/latest``).
    """
    if _RUN_ID.match(ref):
        return f"runs:/{ref}/model"
    if ref.startswith("file:"):
        path = Path(unquote(urlparse(ref).path))
    elif _URI.match(ref):
        return ref
    elif "/" in ref or ref.startswith((".", "~")) or Path(ref).is_absolute():
        path = Path(ref).expanduser()
    elif Path(ref).exists():
        raise InstrlabError(f"model {ref!r} is ambiguous: a file or folder here has that name; "
                            f"pass ./{ref} for a local model directory or models:/{ref}/latest "
                            "for the registered model")
    else:
        return f"models:/{ref}/latest"
    if not path.exists():
        raise InstrlabError(f"model directory {ref} does not exist; pass a run id, a "
                            "registered model name or an MLflow model directory")
    if not path.is_dir():
        raise InstrlabError(f"model {ref} is a file; pass the MLflow model directory "
                            f"(holding {ARTIFACTS}/{WEIGHTS}), a run id or a registered name")
    return str(path.resolve())


def load_model(ref: str, trust_pickled: bool = False) -> LoadedModel:
    """Load a model logged by instrlab (one-line errors for unknown, foreign or broken ones).

    ``trust_pickled``: also load a model that an older instrlab logged as a pickle
    (``mlflow.pytorch``); unpickling it runs whatever code it holds.
    """
    uri = model_uri(ref)
    local = _fetch(uri, ref)
    pickled = False
    if (local / ARTIFACTS / WEIGHTS).is_file():
        model, meta = load_weights_model(local / ARTIFACTS / WEIGHTS,
                                         local / ARTIFACTS / MODEL_META, ref)
    elif (local / LEGACY_PICKLE).is_file():
        if not trust_pickled:
            raise InstrlabError(
                f"model {ref!r} was logged by an older instrlab as a pickle, which can run any "
                f"code when loaded; {RETRAIN}, or pass --trust-pickled-model if you trust "
                "where it came from"
            )
        meta = read_meta(local / LEGACY_META, ref)
        model, pickled = _load_pickled(local, ref), True
    else:
        raise InstrlabError(f"model {ref!r} was not logged by instrlab (no {ARTIFACTS}/{WEIGHTS}); "
                            "pass the id of an instrlab run, its registered name or its directory")
    model.eval()
    return LoadedModel(model, meta, uri, _run_id(uri, local), pickled)


def load_weights_model(weights: Path, meta_path: Path, ref: str) -> tuple[Any, dict[str, Any]]:
    """The model rebuilt from its weights file and metadata, with the metadata."""
    meta = read_meta(meta_path, ref)
    return rebuild(meta, read_weights(weights, ref), ref), meta


def save_weights(model: Any, path: Path) -> None:
    """Write ``model``'s state dict as safetensors (copies: shared memory is refused)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()},
              str(path))


def read_weights(path: Path, ref: str) -> dict[str, Any]:
    """Tensors from a safetensors file: a JSON header and raw numbers, never code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise InstrlabError(f"model {ref!r}: {WEIGHTS} is not a valid safetensors file "
                            f"({first_line(exc, 100)}); {RETRAIN}") from exc


def read_meta(path: Path, ref: str) -> dict[str, Any]:
    """A model's metadata, checked before any use."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem: str | None = "the file is missing"
    except (OSError, ValueError, RecursionError) as exc:
        problem = f"not valid JSON: {first_line(exc, 80)}"
    else:
        problem = check_meta(meta)
    if problem:
        raise InstrlabError(f"model {ref!r} has an unusable {MODEL_META} ({problem}); {RETRAIN}")
    return meta


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _strings(v: Any, n: int | None = None) -> bool:
    return (isinstance(v, list) and bool(v) and (n is None or len(v) == n)
            and all(isinstance(s, str) for s in v))


def check_meta(meta: Any) -> str | None:
    """What is wrong with a model's metadata, or None: keys, types, lengths, ranges."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    if "instrument_names" not in meta:
        return "instrument_names is missing"
    if not _strings(meta["instrument_names"]):
        return "instrument_names must be a non-empty list of strings"
    n = len(meta["instrument_names"])
    rules: list[tuple[str, bool, str, Any]] = [  # key, required, what it must be, test
        ("instrument_labels", False, f"a list of {n} strings", lambda v: _strings(v, n)),
        ("features", True, "a non-empty string", lambda v: isinstance(v, str) and bool(v)),
        ("feature_params", True, "an object", lambda v: isinstance(v, dict)),
        ("sample_rate", True, "a positive integer", lambda v: _is_int(v) and v > 0),
        ("clip_seconds", True, "a positive number", lambda v: _is_number(v) and v > 0),
        ("input_shape", True, "a list of positive integers, 10 million values at most",
         lambda v: isinstance(v, list) and bool(v) and all(_is_int(d) and d > 0 for d in v)
         and math.prod(v) <= 10_000_000),
        ("model", True, 'an object {"name": string, "params": object, "tta_shifts": '
         'list of distinct integers in -32..32 (optional)}',
         lambda v: isinstance(v, dict) and {"name", "params"} <= set(v)
         <= {"name", "params", "tta_shifts"} and isinstance(v["name"], str)
         and isinstance(v["params"], dict) and valid_shifts(v.get("tta_shifts", []))),
        ("thresholds", True, f"a list of {n} numbers",
         lambda v: isinstance(v, list) and len(v) == n and all(_is_number(t) for t in v)),
        ("min_labels", False, f"an integer from 0 to {n}", lambda v: _is_int(v) and 0 <= v <= n),
        ("dataset_digest", True, "a string", lambda v: isinstance(v, str)),
    ]
    for key, required, what, ok in rules:
        if key not in meta:
            if required:
                return f"{key} is missing"
        elif not ok(meta[key]):
            return f"{key} must be {what}"
    return None


def rebuild(meta: dict[str, Any], state: dict[str, Any], ref: str) -> Any:
    """The registered model that checked ``meta`` names, built and given ``state``."""
    import torch

    from instrlab.models.factory import ModelConfig, build_model

    # models saved before tta_shifts existed predict from the input alone, whatever the default
    cfg = ModelConfig(**{"tta_shifts": (), **meta["model"]})
    try:
        with torch.random.fork_rng(devices=[]):  # initial weights: leave the caller's RNG be
            model = build_model(cfg, tuple(meta["input_shape"]), len(meta["instrument_names"]))
    except (InstrlabError, ValueError, TypeError, RuntimeError) as exc:
        raise InstrlabError(f"model {ref!r} cannot be rebuilt from its {MODEL_META} "
                            f"({first_line(exc, 160)}); {RETRAIN}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing:
        detail = f"missing {', '.join(map(repr, missing[:3]))}"
    elif extra:
        detail = f"unexpected {', '.join(map(repr, extra[:3]))}"
    elif wrong:
        detail = (f"{wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, "
                  f"{cfg.name} needs {tuple(expected[wrong[0]].shape)}")
    else:
        try:
            model.load_state_dict(state, strict=True)
            return model.eval()
        except RuntimeError as exc:  # e.g. a dtype that cannot be copied
            detail = first_line(exc, 120)
    raise InstrlabError(f"model {ref!r}: the weights in {WEIGHTS} do not fit model "
                        f"{cfg.name!r} ({detail}); {RETRAIN}")


def _fetch(uri: str, ref: str) -> Path:
    """A local directory holding the model's files (downloaded unless it is local)."""
    if Path(uri).is_absolute():
        return Path(uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    from instrlab.tracking import runs  # importing it turns MLflow's download bars off

    if mlflow.get_tracking_uri().startswith(("http://", "https://")):
        runs.check_tracking()  # no retries, 10 s timeout: fails fast when unreachable
    try:
        return Path(mlflow.artifacts.download_artifacts(uri))
    except (MlflowException, OSError) as exc:
        raise InstrlabError(
            f"cannot load model {ref!r} ({first_line(exc, 160)}); pass the id of a finished "
            "instrlab run, a registered model name or a model directory"
        ) from exc


def _load_pickled(local: Path, ref: str) -> Any:
    """An old ``mlflow.pytorch`` model: unpickling runs whatever code the file holds."""
    import mlflow.pytorch

    try:
        return mlflow.pytorch.load_model(str(local), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - unpickling raises anything
        raise InstrlabError(f"cannot load pickled model {ref!r} ({first_line(exc, 160)}); "
                            f"{RETRAIN}") from exc


def _run_id(uri: str, local: Path) -> str | None:
    """The run that logged the model, if its MLmodel file (YAML, read safely) names one."""
    if uri.startswith("runs:/"):
        return uri.split("/")[1]
    try:
        from mlflow.models import Model

        return Model.load(str(local)).run_id
    except Exception:  # noqa: BLE001 - a local copy may carry no run id
        return None


def get_model_extractor(loaded: LoadedModel) -> Any:
    """The feature extractor the model was trained with."""
    from instrlab.features import get_extractor

    meta = loaded.meta
    return get_extractor(meta["features"], sample_rate=meta["sample_rate"],
                         clip_seconds=meta["clip_seconds"], **meta["feature_params"])


def predict_windows(loaded: LoadedModel, clips: Iterable[np.ndarray], extractor: Any = None,
                    batch: int = BATCH) -> np.ndarray:
    """Per-window probabilities (n_windows, n_instruments), ``batch`` windows at a time."""
    import torch

    extractor = extractor or get_model_extractor(loaded)
    out: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    for clip in _with_end(clips):
        if clip is not None:
            pending.append(extractor(clip))
        if pending and (clip is None or len(pending) == batch):
            feats = np.stack(pending).astype(np.float16).astype(np.float32)  # as in training
            pending = []
            with torch.no_grad():
                out.append(torch.sigmoid(loaded.model(torch.from_numpy(feats))).numpy())
    return np.concatenate(out)


def _with_end(clips: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    yield from clips
    yield None


def predict_audio(loaded: LoadedModel, audio: np.ndarray, extractor: Any = None
                  ) -> np.ndarray:
    """Per-window probabilities (n_windows, n_instruments) for decoded audio."""
    extractor = extractor or get_model_extractor(loaded)
    return predict_windows(loaded, windows(audio, extractor.n_samples), extractor)


def predict_file(loaded: LoadedModel, path: Path, batch: int = BATCH
                 ) -> tuple[np.ndarray, float]:
    """Per-window probabilities for an audio file, streamed in flat memory, and its seconds."""
    extractor = get_model_extractor(loaded)
    stream = AudioStream(path, loaded.meta["sample_rate"], extractor.n_samples)
    return predict_windows(loaded, stream, extractor, batch), stream.seconds


def summarise(probs: np.ndarray) -> np.ndarray:
    """A file's probability per instrument: the highest over its windows."""
    return probs.max(axis=0)
