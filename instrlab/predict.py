"""Loading logged models and predicting instruments in audio files of any length."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.errors import InstrlabError, first_line

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_META = "instrlab_model.json"


@dataclass
class LoadedModel:
    """A model with what it needs to read audio: features, instruments, thresholds."""

    model: Any
    meta: dict[str, Any]
    uri: str
    run_id: str | None

    @property
    def min_labels(self) -> int:
        """Fewest instruments named per clip (0 for models logged before the option)."""
        return int(self.meta.get("min_labels", 0))


def model_uri(ref: str) -> str:
    """A run id, ``runs:/``/``models:/`` URI, local model directory or registered name."""
    if Path(ref).expanduser().is_dir():
        return str(Path(ref).expanduser().resolve())
    if _RUN_ID.match(ref):
        return f"runs:/{ref}/model"
    if "://" in ref or ref.startswith(("runs:/", "models:/")):
        return ref
    if "/" in ref or ref.endswith((".pt", ".pth")):
        raise InstrlabError(f"model path {ref} does not exist; pass a run id, a registered "
                            "model name or an MLflow model directory")
    return f"models:/{ref}/latest"


def load_model(ref: str) -> LoadedModel:
    """Load a model logged by instrlab (clear errors for unknown runs or names)."""
    import mlflow
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    uri = model_uri(ref)
    try:
        local = Path(mlflow.artifacts.download_artifacts(uri))
        model = mlflow.pytorch.load_model(str(local), map_location="cpu")
    except (MlflowException, OSError) as exc:
        first = first_line(exc, 160)
        raise InstrlabError(
            f"cannot load model {ref!r} ({first}); pass the id of a finished instrlab run, a "
            "registered model name or a model directory"
        ) from exc
    meta_path = local / "extra_files" / MODEL_META
    if not meta_path.exists():
        raise InstrlabError(f"model {ref!r} was not logged by instrlab (no {MODEL_META})")
    meta = json.loads(meta_path.read_text())
    run_id = None
    if uri.startswith("runs:/"):
        run_id = uri.split("/")[1]
    else:
        try:
            from mlflow.models import Model

            run_id = Model.load(str(local)).run_id
        except Exception:  # noqa: BLE001 - a local copy may carry no run id
            run_id = None
    model.eval()
    return LoadedModel(model, meta, uri, run_id)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``; missing, empty or undecodable files raise."""
    import soundfile as sf

    if not path.exists():
        raise InstrlabError(f"{path}: no such file")
    if path.is_dir():
        raise InstrlabError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise InstrlabError(f"{path}: file is empty")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise InstrlabError(
            f"{path}: not a readable audio file ({first_line(exc, 100)}); "
            "use WAV, FLAC or OGG"
        ) from exc
    if audio.shape[0] == 0:
        raise InstrlabError(f"{path}: holds no audio samples")
    mono = audio.mean(axis=1)
    if sr != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=sr, target_sr=sample_rate)
    return mono.astype(np.float32)


def windows(audio: np.ndarray, n: int, min_fraction: float = 0.2) -> list[np.ndarray]:
    """Consecutive clips of ``n`` samples; a short tail is kept if it holds enough audio."""
    out = [audio[s:s + n] for s in range(0, max(len(audio), 1), n)]
    if len(out) > 1 and len(out[-1]) < min_fraction * n:
        out.pop()
    return out


def predict_audio(loaded: LoadedModel, audio: np.ndarray, extractor: Any = None
                  ) -> np.ndarray:
    """Per-window probabilities (n_windows, n_instruments)."""
    import torch

    from instrlab.features import get_extractor

    meta = loaded.meta
    extractor = extractor or get_extractor(meta["features"], sample_rate=meta["sample_rate"],
                                           clip_seconds=meta["clip_seconds"],
                                           **meta["feature_params"])
    feats = np.stack([extractor(w) for w in windows(audio, extractor.n_samples)])
    feats = feats.astype(np.float16).astype(np.float32)  # as stored in training
    with torch.no_grad():
        return torch.sigmoid(loaded.model(torch.from_numpy(feats))).numpy()


def summarise(probs: np.ndarray) -> np.ndarray:
    """A file's probability per instrument: the highest over its windows."""
    return probs.max(axis=0)
