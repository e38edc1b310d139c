"""Running the folds: plan them from the soundfonts' presets, train, score, report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from instrlab.config import EvalConfig, ExperimentConfig, octave_label
from instrlab.console import console
from instrlab.errors import InstrlabError
from instrlab.folds.config import FoldsConfig
from instrlab.heldout import MUSIC, counts
from instrlab.instruments import InstrumentSet, get_instrument_set
from instrlab.pipeline import evaluate_logged_model, prepare_dataset, train_and_evaluate
from instrlab.predict import load_model
from instrlab.synth.provenance import compare_soundfonts, sample_families
from instrlab.synth.soundfonts import find_soundfont
from instrlab.tracking.runs import TAG_STEP, log_figure, start_run, use_experiment

TAG_FOLD = "instrlab.fold"


@dataclass(frozen=True)
class Fold:
    """One fold: what is held out, what is trained on, and which presets are left out."""

    held_out: tuple[str, ...]
    train: tuple[str, ...]
    exclude: tuple[tuple[str, str], ...]
    """(instrument, soundfont) pairs not rendered: presets of a held-out family."""

    @property
    def name(self) -> str:
        """The fold's short name, a metric-key-safe stem of its first held-out soundfont."""
        return Path(self.held_out[0]).stem


def plan_folds(iset: InstrumentSet, cfg: FoldsConfig) -> list[Fold]:
    """The folds of ``cfg`` for instrument set ``iset`` (reads the soundfonts' presets)."""
    paths = [find_soundfont(s) for s in cfg.soundfonts]
    families = sample_families(compare_soundfonts(paths, iset, labels=list(cfg.soundfonts)))
    folds = []
    for spec in cfg.hold_out:
        held = tuple(spec.split("+"))
        train = tuple(s for s in cfg.soundfonts if s not in held)
        exclude = []
        for inst in iset.names:
            banned = {sf for group in families.get(inst, []) if set(group) & set(held)
                      for sf in group}
            left = [sf for sf in train if sf not in banned]
            if not left:
                raise InstrlabError(
                    f"fold 'hold out {spec}': nothing left to train {inst} on (every other "
                    "soundfont shares its samples); add an independent soundfont to "
                    "--soundfonts")
            exclude += [(inst, sf) for sf in train if sf in banned]
        folds.append(Fold(held, train, tuple(exclude)))
    names = [f.name for f in folds]
    if len(set(names)) != len(names):
        raise InstrlabError(f"two folds would share the name {names}; hold each soundfont "
                            "out first in one fold only")
    return folds


def fold_data(cfg: ExperimentConfig, fold: Fold) -> Any:
    """The training data of ``fold``: the experiment's data on the fold's soundfonts."""
    return dataclasses.replace(cfg.data, soundfont=fold.train[0],
                               extra_soundfonts=fold.train[1:], soundfont_per="instrument",
                               soundfont_exclude=fold.exclude)


def run_fold(cfg: ExperimentConfig, folds_cfg: FoldsConfig, fold: Fold, *, workers: int,
             progress: bool) -> dict[str, dict[str, float]]:
    """Train on the fold's data and score each held-out soundfont, in nested runs."""
    with start_run(run_name=f"fold {fold.name}: hold out {'+'.join(fold.held_out)}",
                   nested=True) as run:
        mlflow.set_tags({TAG_FOLD: fold.name, "instrlab.fold_held_out": "+".join(fold.held_out),
                         "instrlab.fold_train": "+".join(fold.train)})
        mlflow.log_dict({"held_out": fold.held_out, "train": fold.train,
                         "exclude": [list(p) for p in fold.exclude]}, "fold/plan.json")
        ds = prepare_dataset(fold_data(cfg, fold), workers=workers, progress=progress)
        train_and_evaluate(ds, cfg.model, cfg.train, progress=progress)
        uri = f"runs:/{run.info.run_id}/model"
        loaded = load_model(uri)
        figures = [(octave_label(o), {"octave": o}) for o in folds_cfg.octaves]
        if folds_cfg.music:
            figures.append((MUSIC, {"music": folds_cfg.music}))
        clips = EvalConfig(samples=folds_cfg.eval_samples).clips
        results, shifted, named = {}, {}, {}
        for sf in fold.held_out:
            for label, how in [("", {}), *figures]:
                where = f"{sf}, {label}" if label else sf
                with start_run(run_name=f"evaluate fold {fold.name} on {where}", nested=True):
                    mlflow.set_tag(TAG_FOLD, fold.name)
                    m = evaluate_logged_model(uri, clips(cfg.data, sf, **how), workers=workers,
                                              progress=progress, loaded=loaded)
                stem = Path(sf).stem
                named.update(counts(m, f"{stem}/{label}" if label else stem))
                if label:
                    shifted[f"heldout_macro_f1/{stem}/{label}"] = m["test_macro_f1"]
                else:
                    results[sf] = m
        headline = results[fold.held_out[0]]
        first = Path(fold.held_out[0]).stem
        labels = [label for label, _ in figures]
        mlflow.log_metrics({
            "heldout_macro_f1": headline["test_macro_f1"],
            **{f"heldout_f1/{k.split('/', 1)[1]}": v for k, v in headline.items()
               if k.startswith("test_f1/")},
            **{f"heldout_macro_f1/{Path(sf).stem}": m["test_macro_f1"]
               for sf, m in results.items()},
            **shifted, **named,
            **{f"heldout_macro_f1_{label}": shifted[f"heldout_macro_f1/{first}/{label}"]
               for label in labels},
        })
        for label in labels:
            headline[f"macro_f1_{label}"] = shifted[f"heldout_macro_f1/{first}/{label}"]
    return results


def summary(folds: Sequence[Fold], results: dict[str, dict[str, dict[str, float]]],
            names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per fold: held-out macro F1 (of the protocol, an octave away and on real music) and
    per-instrument F1 on its first held-out soundfont."""
    out = {}
    for fold in folds:
        m = results[fold.name][fold.held_out[0]]
        out[fold.name] = {"macro_f1": m["test_macro_f1"],
                          **{k: v for k, v in m.items() if k.startswith("macro_f1_")},
                          **{n: m[f"test_f1/{n}"] for n in names}}
    return out


def log_summary(report: dict[str, dict[str, float]], names: Sequence[str]) -> None:
    """Parent-run metrics (sortable in the UI), the matrix as JSON and Markdown, a chart."""
    from rich.table import Table

    from instrlab.tracking import plots

    macro = [r["macro_f1"] for r in report.values()]
    shifted = sorted({k for r in report.values() for k in r if k.startswith("macro_f1_")})
    mlflow.log_metrics({
        "heldout_macro_f1_mean": sum(macro) / len(macro),
        **{f"heldout_macro_f1/{fold}": r["macro_f1"] for fold, r in report.items()},
        **{f"heldout_worst_f1/{fold}": min(r[n] for n in names) for fold, r in report.items()},
        **{f"heldout_{k}/{fold}": r[k] for fold, r in report.items() for k in shifted},
    })
    mlflow.log_dict(report, "folds/report.json")
    keys = ["macro_f1", *shifted, *names]
    header = "| F1 | " + " | ".join(f"hold out {f}" for f in report) + " |\n"
    rows = [f"| {key} | " + " | ".join(f"{r[key]:.3f}" for r in report.values()) + " |"
            for key in keys]
    mlflow.log_text(header + "|---" * (len(report) + 1) + "|\n" + "\n".join(rows) + "\n",
                    "folds/report.md")
    log_figure(plots.generalization_chart(report, [*shifted, *names]), "folds/report.png")
    table = Table(title="leave-one-family-out: F1 on each held-out family")
    table.add_column("F1")
    for fold in report:
        table.add_column(f"hold out {fold}", justify="right")
    for key in keys:
        table.add_row(key, *(f"{r[key]:.3f}" for r in report.values()))
    console.print(table)


def check_music(cfg: ExperimentConfig, folds_cfg: FoldsConfig) -> None:
    """A one-line error when the real-music figure names no usable score generator."""
    if folds_cfg.music:
        n = len(get_instrument_set(cfg.data.instruments))
        EvalConfig().clips(cfg.data, None, music=folds_cfg.music).score.validate(n)


def run_folds(cfg: ExperimentConfig, folds_cfg: FoldsConfig, *, workers: int = 0,
              progress: bool = True, run_name: str | None = None) -> dict[str, Any]:
    """Every fold in one parent MLflow run; returns the report and the parent run id."""
    iset = get_instrument_set(cfg.data.instruments)
    folds = plan_folds(iset, folds_cfg)  # every one-line error before any work
    check_music(cfg, folds_cfg)
    use_experiment(cfg.data.instruments)
    with start_run(run_name=run_name or "leave-one-family-out") as parent:
        mlflow.set_tag(TAG_STEP, "folds")
        mlflow.log_params({"folds.soundfonts": " ".join(folds_cfg.soundfonts),
                           "folds.hold_out": " ".join(folds_cfg.hold_out),
                           "folds.eval_samples": folds_cfg.eval_samples,
                           # the folds score with their own settings, not main's eval.*
                           **{k: v for k, v in cfg.flat_params().items()
                              if not k.startswith("eval.")}})
        mlflow.log_text(json.dumps([dataclasses.asdict(f) for f in folds], indent=1),
                        "folds/plan.json")
        results = {f.name: run_fold(cfg, folds_cfg, f, workers=workers, progress=progress)
                   for f in folds}
        report = summary(folds, results, iset.names)
        log_summary(report, iset.names)
    return {"run_id": parent.info.run_id, "report": report}
