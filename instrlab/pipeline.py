"""The experiment steps: dataset -> train -> evaluate, each tracked in MLflow.

Experiment scripts in ``experiments/`` and the command line combine these steps; the
steps themselves only combine registered components.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from instrlab.console import console
from instrlab.dataset import DatasetConfig, SynthDataset, generate_dataset, open_dataset
from instrlab.errors import InstrlabError
from instrlab.models.factory import ModelConfig, build_model
from instrlab.params import flat_params
from instrlab.predict import MODEL_META, LoadedModel
from instrlab.scores import check_trainable
from instrlab.tracking.runs import (
    TAG_DIGEST,
    TAG_STEP,
    TAG_TRAINED_RUN,
    find_finished_run,
    log_figure,
    scratch_dir,
    start_run,
)
from instrlab.training import TrainConfig, TrainResult, fit, pick_device, predict_proba

# ---------------------------------------------------------------- dataset step


def prepare_dataset(cfg: DatasetConfig, workers: int = 0, progress: bool = True,
                    nested_run: bool = False) -> SynthDataset:
    """Build or reuse the dataset; with ``nested_run`` also track it as a ``generate`` run.

    Like MLflow's multistep example, a finished ``generate`` run for the same dataset
    digest is reused instead of logging a new one.
    """
    t0 = time.perf_counter()
    path = generate_dataset(cfg, workers=workers, progress=progress)
    ds = open_dataset(path)
    seconds = time.perf_counter() - t0
    if mlflow.active_run() is not None:
        mlflow.log_metric("seconds_generate", seconds)
    if nested_run:
        previous = find_finished_run({TAG_STEP: "generate", TAG_DIGEST: ds.digest})
        if previous is not None:
            run_id = previous.info.run_id
            console.print(f"reusing generate run {run_id} for {ds.name}")
        else:
            with start_run(run_name=f"generate {ds.name}", nested=True) as run:
                log_dataset_run(ds, seconds)
            run_id = run.info.run_id
        mlflow.set_tag("instrlab.generate_run_id", run_id)
    return ds


def log_dataset_run(ds: SynthDataset, seconds: float) -> None:
    """Params, statistics and identity of a dataset in the active run."""
    mlflow.set_tags({TAG_STEP: "generate", TAG_DIGEST: ds.digest})
    mlflow.log_params(ds.config.flat_params())
    mlflow.log_metric("seconds_generate", seconds)
    mlflow.log_dict(ds.stats, "dataset/stats.json")
    mlflow.log_dict(ds.meta, "dataset/config.json")
    log_dataset_input(ds, "generated")


def log_dataset_input(ds: SynthDataset, context: str) -> None:
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": it is local
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(ds.path))
    mlflow.log_input(MetaDataset(source, name=ds.name, digest=ds.digest), context=context)


# ---------------------------------------------------------------- train + evaluate


def train_and_evaluate(
    ds: SynthDataset,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    register_as: str | None = None,
    n_examples: int = 4,
    progress: bool = True,
    log_model: bool = True,
    on_epoch: Any = None,
    on_batch: Any = None,
    evaluate_test: bool = True,
) -> dict[str, float]:
    """Train on the train split, select on validation, test once; log it all to MLflow.

    ``evaluate_test=False`` (tuning trials) stops after training: the test split is
    not touched and only validation figures are returned. ``on_epoch`` and ``on_batch`` go
    to :func:`instrlab.training.fit`.
    """
    check_trainable(ds.config.score)
    names = ds.instrument_names
    splits = ds.split()
    import torch

    torch.manual_seed(train_cfg.seed)  # weight init: same seed, same model
    model = build_model(model_cfg, tuple(ds.features.shape[1:]), len(names))
    n_params = sum(p.numel() for p in model.parameters())
    device = pick_device(train_cfg.device)
    mlflow.set_tags({
        TAG_STEP: "train", TAG_DIGEST: ds.digest, "instrlab.model": model_cfg.name,
        "instrlab.features": ds.config.features, "instrlab.instruments": ds.config.instruments,
        "instrlab.device": device.type,
    })
    mlflow.log_params({**ds.config.flat_params(), **flat_params("model", asdict(model_cfg)),
                       **flat_params("train", train_cfg.to_dict())})
    mlflow.log_params({"model.n_parameters": n_params, "data.digest": ds.digest,
                       "split.train": len(splits["train"]), "split.val": len(splits["val"]),
                       "split.test": len(splits["test"])})
    log_dataset_input(ds, "training")
    mlflow.log_dict(ds.stats, "dataset/stats.json")

    def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    t0 = time.perf_counter()
    result = fit(model, ds.features, ds.labels, splits["train"], splits["val"], train_cfg,
                 on_epoch=log_epoch, progress=progress, on_batch=on_batch)
    mlflow.log_metrics({"seconds_train": time.perf_counter() - t0,
                        "train_samples_per_s": result.train_samples_per_s,
                        "best_epoch": result.best_epoch,
                        "best_val_macro_f1": result.best_val_macro_f1})
    from instrlab.tracking import plots

    log_figure(plots.learning_curves(result.history), "plots/learning_curves.png")
    val = {"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch,
           "train_samples_per_s": result.train_samples_per_s}
    if not evaluate_test:
        if log_model:
            log_trained_model(model, ds, model_cfg, result, register_as)
        return val

    t1 = time.perf_counter()
    test = evaluate_split(model, ds, splits["test"], result.thresholds, prefix="test",
                          min_labels=result.min_labels)
    mlflow.log_metric("seconds_evaluate", time.perf_counter() - t1)
    log_examples(model, ds, splits["test"][:n_examples], result.thresholds, result.min_labels)
    if log_model:
        log_trained_model(model, ds, model_cfg, result, register_as)
    console.print(f1_table(test, names, ds.instrument_labels, prefix="test"))
    return {**test, **val}


def evaluate_split(model: Any, ds: SynthDataset, idx: np.ndarray, thresholds: np.ndarray,
                   prefix: str, min_labels: int = 0) -> dict[str, float]:
    """Metrics and plots of ``model`` on rows ``idx``, logged as ``{prefix}_*``."""
    from instrlab.seed_reference import SEED_F1
    from instrlab.tracking import plots
    from instrlab.training.metrics import binarize, multilabel_report

    names = ds.instrument_names
    probs = predict_proba(model, ds.features, idx)
    y_true = ds.labels[idx]
    report = multilabel_report(y_true, probs, thresholds, names, min_labels)
    metrics = {f"{prefix}_{k}": v for k, v in report.items()}
    mlflow.log_metrics(metrics)
    log_figure(plots.f1_vs_seed({n: report[f"f1/{n}"] for n in names}, names, SEED_F1),
               f"plots/{prefix}_f1_vs_seed.png")
    log_figure(plots.pr_curves(y_true, probs, names), f"plots/{prefix}_pr_curves.png")
    log_figure(plots.confusion_view(y_true, binarize(probs, thresholds, min_labels), names),
               f"plots/{prefix}_confusion.png")
    # unrounded, so the logged metrics follow from these probabilities exactly (a rounded
    # probability can cross a threshold or tie the most probable instruments)
    mlflow.log_dict({"index": [int(i) for i in idx], "probs": probs.tolist()},
                    f"predictions/{prefix}.json")
    return metrics


def log_examples(model: Any, ds: SynthDataset, idx: np.ndarray, thresholds: np.ndarray,
                 min_labels: int = 0) -> None:
    """A few test clips: spectrograms with truth and prediction, and their audio."""
    import soundfile as sf

    from instrlab.dataset.render import SampleRenderer
    from instrlab.tracking import plots
    from instrlab.training.metrics import binarize

    if len(idx) == 0:
        return
    names = ds.instrument_names
    probs = predict_proba(model, ds.features, idx)
    titles = []
    for row, i in zip(binarize(probs, thresholds, min_labels), idx):
        truth = [names[j] for j in np.flatnonzero(ds.labels[i])]
        pred = [names[j] for j in np.flatnonzero(row)]
        titles.append(f"#{int(i)} true: {', '.join(truth)}\npred: {', '.join(pred) or '-'}")
    feats = np.asarray(ds.features[np.sort(idx)], np.float32)
    log_figure(plots.spectrogram_grid(feats[np.argsort(np.argsort(idx))], titles),
               "examples/spectrograms.png")
    renderer = SampleRenderer(ds.config)
    with scratch_dir() as tmp:
        for i in idx:
            audio, _ = renderer.render_audio(renderer.score(int(i)))
            path = Path(tmp) / f"test_{int(i):06d}.wav"
            sf.write(path, audio, ds.config.sample_rate, subtype="PCM_16")
            mlflow.log_artifact(str(path), "examples")


def model_meta(ds: SynthDataset, model_cfg: ModelConfig, thresholds: np.ndarray,
               min_labels: int = 0) -> dict[str, Any]:
    """What `instrlab predict` needs besides the weights."""
    cfg = ds.config
    return {
        "instrument_names": ds.instrument_names,
        "instrument_labels": ds.instrument_labels,
        "features": cfg.features,
        "feature_params": cfg.feature_params,
        "sample_rate": cfg.sample_rate,
        "clip_seconds": cfg.score.clip_seconds,
        "input_shape": list(ds.features.shape[1:]),
        "model": asdict(model_cfg),
        "thresholds": [float(t) for t in thresholds],
        "min_labels": int(min_labels),
        "dataset_digest": ds.digest,
    }


SERVING_DISTRIBUTIONS = ("mlflow", "torch", "safetensors", "librosa", "numpy", "pandas")
"""What loading the logged pyfunc model imports besides instrlab (a fresh process's
``sys.modules`` after ``mlflow.pyfunc.load_model(...).predict``)."""


def serving_requirements() -> list[str]:
    """The logged model's pip requirements, each pinned to the version that trained it.

    instrlab itself is not one of them: the model carries its own copy of the package
    (``code_paths``), so ``mlflow models serve`` never installs whatever a package index
    serves under the name ``instrlab``, and an unpinned ``torch`` cannot pull another build.
    """
    from importlib.metadata import version

    from packaging.version import Version

    # public: torch's "+cpu" local label names a wheel index, not a release an index has
    return [f"{name}=={Version(version(name)).public}" for name in SERVING_DISTRIBUTIONS]


def log_trained_model(model: Any, ds: SynthDataset, model_cfg: ModelConfig,
                      result: TrainResult, register_as: str | None) -> None:
    """Log weights (safetensors) and metadata as a pyfunc model with signature and example.

    The pyfunc flavor is the file :mod:`instrlab.serving`, logged as an MLflow "model from
    code", so MLflow writes no ``python_model.pkl`` (the cloudpickled PythonModel it stores
    by default, which only ``mlflow.pyfunc.load_model`` would read). instrlab's own loader
    reads only the weights and the JSON.
    """
    import importlib.util

    import mlflow.pyfunc
    import pandas as pd
    import torch
    from mlflow.models import infer_signature

    from instrlab.predict import WEIGHTS, save_weights

    model = model.cpu().eval()
    example = np.asarray(ds.features[:1], np.float32)
    with torch.no_grad():
        out = torch.sigmoid(model(torch.from_numpy(example))).numpy()
    meta = model_meta(ds, model_cfg, result.thresholds, result.min_labels)
    serving = importlib.util.find_spec("instrlab.serving").origin  # its path, not imported
    with scratch_dir() as tmp:
        weights, meta_path = Path(tmp) / WEIGHTS, Path(tmp) / MODEL_META
        save_weights(model, weights)
        meta_path.write_text(json.dumps(meta, indent=1))
        mlflow.pyfunc.log_model(
            name="model", python_model=serving,
            artifacts={"weights": str(weights), "meta": str(meta_path)},
            signature=infer_signature(example, pd.DataFrame(out, columns=ds.instrument_names)),
            input_example=example, registered_model_name=register_as,
            pip_requirements=serving_requirements(),
            code_paths=[str(Path(serving).parent)],
            metadata={"instrlab_model": model_cfg.name, "features": ds.config.features,
                      "instrument_names": ds.instrument_names},
        )
    mlflow.log_dict(meta, f"model_meta/{MODEL_META}")


def f1_table(metrics: dict[str, float], names: list[str], labels: list[str], prefix: str) -> Any:
    """Rich table: per instrument, this run's F1 beside the seed's."""
    from rich.table import Table

    from instrlab.seed_reference import SEED_F1, SEED_MACRO_F1

    table = Table(title=f"{prefix} F1 per instrument (seed figures from SEED.md)")
    table.add_column("instrument")
    table.add_column("F1", justify="right")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("seed F1", justify="right")
    for name, label in zip(names, labels):
        seed = SEED_F1.get(name)
        table.add_row(label, f"{metrics[f'{prefix}_f1/{name}']:.3f}",
                      f"{metrics[f'{prefix}_precision/{name}']:.3f}",
                      f"{metrics[f'{prefix}_recall/{name}']:.3f}",
                      "" if seed is None else f"{seed:.2f}")
    table.add_section()
    table.add_row("macro F1", f"{metrics[f'{prefix}_macro_f1']:.3f}", "", "",
                  f"{SEED_MACRO_F1:.2f}")
    table.add_row("micro F1", f"{metrics[f'{prefix}_micro_f1']:.3f}", "", "", "")
    table.add_row("mAP", f"{metrics[f'{prefix}_mAP']:.3f}", "", "", "")
    table.add_row("named / true per clip",
                  f"{metrics[f'{prefix}_labels_per_clip']:.2f} / "
                  f"{metrics[f'{prefix}_true_labels_per_clip']:.2f}", "", "", "")
    return table


# ---------------------------------------------------------------- evaluate a logged model


def evaluate_logged_model(model_uri: str, data_cfg: DatasetConfig, workers: int = 0,
                          progress: bool = True, loaded: LoadedModel | None = None
                          ) -> dict[str, float]:
    """Score a logged model on a dataset config (e.g. another soundfont) in its own run.

    The run is tagged with the training run's id. On the dataset the model was trained
    on only the test split counts; on any other dataset every clip does. ``loaded``: the
    model already loaded from ``model_uri`` (loaded here otherwise).
    """
    from instrlab.predict import load_model

    loaded = loaded or load_model(model_uri)
    ds = prepare_dataset(data_cfg, workers=workers, progress=progress)
    if ds.instrument_names != loaded.meta["instrument_names"]:
        raise InstrlabError(
            f"model was trained on instruments {loaded.meta['instrument_names']} but dataset "
            f"{ds.name} has {ds.instrument_names}; use the same --instruments"
        )
    if list(ds.features.shape[1:]) != list(loaded.meta["input_shape"]):
        raise InstrlabError(
            f"model takes features {loaded.meta['features']} of shape "
            f"{loaded.meta['input_shape']}, dataset has {list(ds.features.shape[1:])}; use "
            f"--features {loaded.meta['features']}"
        )
    same = ds.digest == loaded.meta["dataset_digest"]
    idx = ds.split()["test"] if same else np.arange(len(ds))
    mlflow.set_tags({TAG_STEP: "evaluate", TAG_DIGEST: ds.digest,
                     TAG_TRAINED_RUN: loaded.run_id or "", "instrlab.model_uri": model_uri,
                     "instrlab.soundfont": "+".join(s.get("soundfont", "?") for s in
                                                    ds.meta["identity"]["synth"])})
    mlflow.log_params({**ds.config.flat_params(), "model_uri": model_uri,
                       "eval.rows": "test split" if same else "all"})
    log_dataset_input(ds, "evaluation")
    thresholds = np.asarray(loaded.meta["thresholds"])
    metrics = evaluate_split(loaded.model, ds, idx, thresholds, prefix="test",
                             min_labels=loaded.min_labels)
    console.print(f1_table(metrics, ds.instrument_names, ds.instrument_labels, prefix="test"))
    return metrics


def log_generalization_report(model_uri: str, results: dict[str, dict[str, float]]) -> None:
    """Table and chart of macro and per-instrument F1 on each evaluation source."""
    from rich.table import Table

    from instrlab.tracking import plots

    sources = list(results)
    names = sorted({k.split("/", 1)[1] for r in results.values() for k in r
                    if k.startswith("test_f1/")})
    for src, metrics in results.items():
        mlflow.log_metric(f"macro_f1/{src}", metrics["test_macro_f1"])
    report = {src: {"macro_f1": m["test_macro_f1"],
                    **{n: m[f"test_f1/{n}"] for n in names}} for src, m in results.items()}
    mlflow.set_tag(TAG_STEP, "generalization")
    mlflow.log_dict({"model_uri": model_uri, "f1": report}, "generalization/report.json")
    log_figure(plots.generalization_chart(report, names), "generalization/report.png")
    table = Table(title=f"generalization of {model_uri}: F1 per evaluation source")
    table.add_column("instrument")
    for src in sources:
        table.add_column(src, justify="right")
    for key in ["macro_f1", *names]:
        table.add_row(key, *(f"{report[src][key]:.3f}" for src in sources))
    console.print(table)
