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
from instrlab.dataset.config import allowed_soundfonts, soundfont_names
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
TAG_TRAIN_SEED = "instrlab.train_seed"


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
    """The training data of ``fold``: the experiment's data on the fold's soundfonts, with
    the experiment's weights and exclusions of those soundfonts."""
    weights = tuple(p for p in cfg.data.soundfont_weights if p[0] in fold.train)
    exclude = fold.exclude + tuple(p for p in cfg.data.soundfont_exclude
                                   if p[1] in fold.train and p not in fold.exclude)
    return dataclasses.replace(cfg.data, soundfont=fold.train[0],
                               extra_soundfonts=fold.train[1:], soundfont_per="instrument",
                               soundfont_exclude=exclude, soundfont_weights=weights)


def run_fold(cfg: ExperimentConfig, folds_cfg: FoldsConfig, fold: Fold, *, workers: int,
             progress: bool, name_seed: bool = False) -> dict[str, dict[str, float]]:
    """Train on the fold's data and score each held-out soundfont, in nested runs (named with
    the training seed when ``name_seed``)."""
    seed = f", train seed {cfg.train.seed}" if name_seed else ""
    with start_run(run_name=f"fold {fold.name}: hold out {'+'.join(fold.held_out)}{seed}",
                   nested=True) as run:
        mlflow.set_tags({TAG_FOLD: fold.name, "instrlab.fold_held_out": "+".join(fold.held_out),
                         "instrlab.fold_train": "+".join(fold.train),
                         TAG_TRAIN_SEED: str(cfg.train.seed)})
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
        results, shifted, named, ranks = {}, {}, {}, {}
        for sf in fold.held_out:
            for label, how in [("", {}), *figures]:
                where = f"{sf}, {label}" if label else sf
                with start_run(run_name=f"evaluate fold {fold.name} on {where}", nested=True):
                    mlflow.set_tag(TAG_FOLD, fold.name)
                    m = evaluate_logged_model(uri, clips(cfg.data, sf, **how), workers=workers,
                                              progress=progress, loaded=loaded)
                stem = Path(sf).stem
                named.update(counts(m, f"{stem}/{label}" if label else stem))
                # ranking, whatever the thresholds: tells a worse order from a misplaced line
                ranks[f"heldout_map/{stem}/{label}" if label else f"heldout_map/{stem}"] = \
                    m["test_mAP"]
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
            **shifted, **named, **ranks, "heldout_map": headline["test_mAP"],
            **{f"heldout_macro_f1_{label}": shifted[f"heldout_macro_f1/{first}/{label}"]
               for label in labels},
        })
        for label in labels:
            headline[f"macro_f1_{label}"] = shifted[f"heldout_macro_f1/{first}/{label}"]
            headline[f"map_{label}"] = ranks[f"heldout_map/{first}/{label}"]
    return results


def summary(folds: Sequence[Fold], results: dict[str, dict[str, dict[str, float]]],
            names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per fold: held-out macro F1 and mAP (of the protocol, an octave away and on real
    music) and per-instrument F1 on its first held-out soundfont."""
    out = {}
    for fold in folds:
        m = results[fold.name][fold.held_out[0]]
        out[fold.name] = {"macro_f1": m["test_macro_f1"], "map": m["test_mAP"],
                          **{k: v for k, v in m.items() if k.startswith(("macro_f1_", "map_"))},
                          **{n: m[f"test_f1/{n}"] for n in names}}
    return out


def mean_report(reports: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each figure of the reports (one per training seed) averaged over them."""
    return {fold: {k: sum(r[fold][k] for r in reports) / len(reports) for k in figures}
            for fold, figures in reports[0].items()}


def figure_keys(report: dict[str, dict[str, float]]) -> list[str]:
    """The report's figures besides the protocol's macro F1 and the instruments: macro F1
    an octave away and on real music, and mAP of each figure."""
    return sorted({k for r in report.values() for k in r if k.startswith(("macro_f1_", "map"))},
                  key=lambda k: (k.startswith("map"), k))


def report_metrics(report: dict[str, dict[str, float]], names: Sequence[str]
                   ) -> dict[str, float]:
    """The parent run's metrics of one report: per fold, and their mean."""
    macro = [r["macro_f1"] for r in report.values()]
    figures = figure_keys(report)
    return {
        "heldout_macro_f1_mean": sum(macro) / len(macro),
        **{f"heldout_macro_f1/{fold}": r["macro_f1"] for fold, r in report.items()},
        **{f"heldout_worst_f1/{fold}": min(r[n] for n in names) for fold, r in report.items()},
        **{f"heldout_{k}/{fold}": r[k] for fold, r in report.items() for k in figures},
    }


def log_summary(seeds: dict[int, dict[str, dict[str, float]]], names: Sequence[str]
                ) -> dict[str, dict[str, float]]:
    """Parent-run metrics (sortable in the UI), the matrix as JSON and Markdown, a chart: of
    the mean over the training ``seeds`` (each seed's report), and each seed's metrics and
    figures too when there are several. Returns the mean report."""
    from rich.table import Table

    from instrlab.tracking import plots

    report = mean_report(list(seeds.values()))
    figures = figure_keys(report)
    metrics = report_metrics(report, names)
    if len(seeds) > 1:
        for seed, each in seeds.items():
            metrics.update({f"{k}/train_seed_{seed}": v
                            for k, v in report_metrics(each, names).items()})
        mlflow.log_dict({str(s): r for s, r in seeds.items()}, "folds/report_seeds.json")
    mlflow.log_metrics(metrics)
    mlflow.log_dict(report, "folds/report.json")
    keys = ["macro_f1", *figures, *names]

    def cell(fold: str, key: str) -> str:
        each = " / ".join(f"{r[fold][key]:.3f}" for r in seeds.values())
        return f"{report[fold][key]:.3f}" + (f" ({each})" if len(seeds) > 1 else "")

    title = ("" if len(seeds) == 1 else
             f"mean of train seeds {' / '.join(map(str, seeds))} (each seed)")
    header = f"| held-out figure {title}| " + " | ".join(f"hold out {f}" for f in report) + " |\n"
    rows = [f"| {key} | " + " | ".join(cell(f, key) for f in report) + " |" for key in keys]
    mlflow.log_text(header + "|---" * (len(report) + 1) + "|\n" + "\n".join(rows) + "\n",
                    "folds/report.md")
    f1s = [k for k in figures if k.startswith("macro_f1_")]
    log_figure(plots.generalization_chart(report, [*f1s, *names]), "folds/report.png")
    table = Table(title="leave-one-family-out: F1 (and mAP) on each held-out family" + (
        f", {title}" if title else ""))
    table.add_column("figure")
    for fold in report:
        table.add_column(f"hold out {fold}", justify="right")
    for key in keys:
        table.add_row(key, *(cell(f, key) for f in report))
    console.print(table)
    return report


def check_music(cfg: ExperimentConfig, folds_cfg: FoldsConfig) -> None:
    """A one-line error when the real-music figure names no usable score generator."""
    if folds_cfg.music:
        n = len(get_instrument_set(cfg.data.instruments))
        EvalConfig().clips(cfg.data, None, music=folds_cfg.music).score.validate(n)


def on_experiment(cfg: ExperimentConfig, folds_cfg: FoldsConfig) -> FoldsConfig:
    """``folds_cfg`` with the experiment's soundfonts (primary first) where it names none."""
    return folds_cfg.on(tuple(soundfont_names(cfg.data)))


def check_folds(cfg: ExperimentConfig, folds_cfg: FoldsConfig) -> list[Fold]:
    """The folds of ``folds_cfg``, after every one-line error they can raise before any
    work (the soundfonts, each fold's training data, the music)."""
    iset = get_instrument_set(cfg.data.instruments)
    folds = plan_folds(iset, on_experiment(cfg, folds_cfg))
    for fold in folds:
        allowed_soundfonts(fold_data(cfg, fold), iset)
    check_music(cfg, folds_cfg)
    return folds


def run_folds(cfg: ExperimentConfig, folds_cfg: FoldsConfig, *, workers: int = 0,
              progress: bool = True, run_name: str | None = None) -> dict[str, Any]:
    """Every fold (once per training seed of ``folds_cfg``) in one parent MLflow run; returns
    the parent run id, the report (the mean over the seeds) and each seed's report."""
    iset = get_instrument_set(cfg.data.instruments)
    folds_cfg = on_experiment(cfg, folds_cfg)
    folds = check_folds(cfg, folds_cfg)
    use_experiment(cfg.data.instruments)
    with start_run(run_name=run_name or "leave-one-family-out") as parent:
        mlflow.set_tag(TAG_STEP, "folds")
        seeds = folds_cfg.train_seeds or (cfg.train.seed,)
        mlflow.log_params({"folds.soundfonts": " ".join(folds_cfg.soundfonts),
                           "folds.hold_out": " ".join(folds_cfg.hold_out),
                           "folds.eval_samples": folds_cfg.eval_samples,
                           "folds.train_seeds": " ".join(map(str, seeds)),
                           # the folds score with their own settings, not main's eval.*, and
                           # train with folds.train_seeds
                           **{k: v for k, v in cfg.flat_params().items()
                              if not k.startswith("eval.") and k != "train.seed"}})
        mlflow.log_text(json.dumps([dataclasses.asdict(f) for f in folds], indent=1),
                        "folds/plan.json")
        reports = {}
        for seed in seeds:
            seeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
            results = {f.name: run_fold(seeded, folds_cfg, f, workers=workers,
                                        progress=progress, name_seed=len(seeds) > 1)
                       for f in folds}
            reports[seed] = summary(folds, results, iset.names)
        report = log_summary(reports, iset.names)
    return {"run_id": parent.info.run_id, "report": report, "seeds": reports}
