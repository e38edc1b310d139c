"""Held-out figures of a trained run: its model scored off the training distribution.

Each figure is clean clips (seed 1; 0 when training used seed 1) of the run's protocol,
either on the primary soundfont with every note moved by whole octaves, or rendered with
another soundfont alone. Each is scored in a nested run; the headline metrics go to the
training run itself, so that its row in the MLflow runs table sorts by them.
"""

from __future__ import annotations

import mlflow

from instrlab.config import EvalConfig, octave_label, soundfont_stem
from instrlab.dataset import DatasetConfig
from instrlab.pipeline import evaluate_logged_model
from instrlab.predict import load_model
from instrlab.tracking.runs import start_run

TAG_HELDOUT = "instrlab.heldout"
MUSIC = "music"  # the real-music figures' name in metric keys


def counts(m: dict[str, float], where: str) -> dict[str, float]:
    """Instruments named and present per clip of one held-out figure, as metrics keyed by
    ``where``: naming too many is how a model fails off its training distribution."""
    return {f"heldout_labels_per_clip/{where}": m["test_labels_per_clip"],
            f"heldout_true_labels_per_clip/{where}": m["test_true_labels_per_clip"]}


def evaluate_held_out(model_uri: str, data: DatasetConfig, cfg: EvalConfig, *,
                      workers: int = 0, progress: bool = True) -> dict[str, float]:
    """Score the model at ``model_uri`` (trained on ``data``) on every figure of ``cfg``.

    Logs ``heldout_macro_f1_octave_*``, ``heldout_macro_f1_music``,
    ``heldout_macro_f1/<stem>``, ``heldout_macro_f1/<stem>/music`` and
    ``heldout_worst_f1/<stem>`` to the active run and returns them, and with them the
    :func:`counts` of each figure (``heldout_labels_per_clip/<figure>``, ...).
    """
    loaded = load_model(model_uri)

    def score(name: str, figure: DatasetConfig) -> dict[str, float]:
        with start_run(run_name=f"held out: {name}", nested=True):
            mlflow.set_tag(TAG_HELDOUT, name)
            return evaluate_logged_model(model_uri, figure, workers=workers, progress=progress,
                                         loaded=loaded)

    metrics: dict[str, float] = {}
    for octave in cfg.octaves:
        label = octave_label(octave)
        m = score(label, cfg.octave_data(data, octave))
        metrics[f"heldout_macro_f1_{label}"] = m["test_macro_f1"]
        metrics.update(counts(m, label))
    if cfg.music:
        m = score(MUSIC, cfg.music_data(data, data.soundfont))
        metrics[f"heldout_macro_f1_{MUSIC}"] = m["test_macro_f1"]
        metrics.update(counts(m, MUSIC))
    for soundfont in cfg.soundfonts:
        stem = soundfont_stem(soundfont)
        m = score(stem, cfg.soundfont_data(data, soundfont))
        metrics[f"heldout_macro_f1/{stem}"] = m["test_macro_f1"]
        metrics[f"heldout_worst_f1/{stem}"] = min(v for k, v in m.items()
                                                  if k.startswith("test_f1/"))
        metrics.update(counts(m, stem))
        if cfg.music:
            m = score(f"{stem}, {MUSIC}", cfg.music_data(data, soundfont))
            metrics[f"heldout_macro_f1/{stem}/{MUSIC}"] = m["test_macro_f1"]
            metrics.update(counts(m, f"{stem}/{MUSIC}"))
    mlflow.log_metrics(metrics)
    return metrics


def summary(metrics: dict[str, float]) -> str:
    """One line of the held-out figures, as ``evaluate_held_out`` returns them."""
    parts = [f"{k.removeprefix('heldout_macro_f1').lstrip('_/')} {v:.4f}"
             for k, v in metrics.items() if k.startswith("heldout_macro_f1")]
    worst = [f"{k.split('/', 1)[1]} {v:.4f}" for k, v in metrics.items()
             if k.startswith("heldout_worst_f1/")]
    line = "held-out macro F1: " + ", ".join(parts)
    return line + (f"; worst instrument F1: {', '.join(worst)}" if worst else "")
