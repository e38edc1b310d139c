"""Two leave-one-family-out runs side by side: a candidate against a reference, fold by fold
and training seed by training seed, with the rule this project adopts a change by."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from instrlab.errors import InstrlabError, first_line
from instrlab.tracking.runs import TAG_STEP

Reports = dict[str, dict[str, dict[str, float]]]
"""{training seed: {fold: {figure: value}}}, as a folds run logs them."""

FIGURES = {"macro_f1": "random notes", "macro_f1_music": "real music",
           "macro_f1_octave_down": "octave below", "macro_f1_octave_up": "octave above"}
"""The held-out figures compared (macro F1), when both runs have them."""


@dataclass
class Comparison:
    """The common folds, seeds and figures of two runs, and where the rule fails."""

    folds: list[str]
    seeds: list[str]
    figures: list[str]
    instruments: list[str]
    """Per-instrument held-out F1 (random notes) both runs have."""
    reference: Reports
    candidate: Reports
    failures: list[str] = field(default_factory=list)
    """Why the candidate is not adopted (empty: it is): held-out random notes not above the
    reference on some fold and seed, or the mean of real music below it on some fold."""


def load_reports(run_id: str) -> tuple[str, Reports]:
    """The folds parent run ``run_id``'s name and each training seed's report (one-line
    errors for an unknown run or one that is not a folds run)."""
    try:
        run = mlflow.get_run(run_id)
    except MlflowException as exc:
        raise InstrlabError(f"no MLflow run {run_id!r} in {mlflow.get_tracking_uri()} "
                            f"({first_line(exc)}); give the run id `instrlab folds` "
                            "printed") from None
    if run.data.tags.get(TAG_STEP) != "folds":
        raise InstrlabError(f"run {run_id} is not a leave-one-family-out run (its step is "
                            f"{run.data.tags.get(TAG_STEP)!r}); give the parent run id "
                            "`instrlab folds` printed, not a fold's")
    seeds = run.data.params.get("folds.train_seeds", "").split()
    name = "report_seeds.json" if len(seeds) > 1 else "report.json"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                                       artifact_path=f"folds/{name}",
                                                       dst_path=tmp)
            data = json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError) as exc:
            raise InstrlabError(f"run {run_id} holds no readable folds/{name} "
                                f"({first_line(exc)}); it did not finish: run the folds "
                                "again") from None
    label = f"{run.info.run_name} ({run_id[:8]})"
    return label, (data if len(seeds) > 1 else {seeds[0] if seeds else "?": data})


def compare(reference: Reports, candidate: Reports) -> Comparison:
    """The rule, on the folds and seeds both runs have: the candidate's held-out macro F1
    above the reference's on every fold and seed, and its mean real-music figure, where both
    have one, not below on any fold."""
    seeds = [s for s in reference if s in candidate]
    if not seeds:
        raise InstrlabError(f"the runs share no training seed (reference {' '.join(reference)},"
                            f" candidate {' '.join(candidate)}); run the candidate with "
                            f"--train-seeds {' '.join(reference)}")
    first_ref, first_cand = reference[seeds[0]], candidate[seeds[0]]
    folds = [f for f in first_ref if f in first_cand]
    if not folds:
        raise InstrlabError(f"the runs share no fold (reference {', '.join(first_ref)}; "
                            f"candidate {', '.join(first_cand)}); hold out the same families")

    def shared(key: str) -> bool:
        return all(key in r[s][f] for r in (reference, candidate) for s in seeds for f in folds)

    figures = [k for k in FIGURES if shared(k)]
    instruments = [k for k in first_ref[folds[0]]
                   if not k.startswith(("macro_f1", "map")) and shared(k)]
    out = Comparison(folds, seeds, figures, instruments, reference, candidate)
    for fold in folds:
        for seed in seeds:
            ref, cand = reference[seed][fold]["macro_f1"], candidate[seed][fold]["macro_f1"]
            if cand <= ref:
                out.failures.append(f"hold out {fold}, train seed {seed}: held-out macro F1 "
                                    f"{cand:.3f}, not above {ref:.3f}")
        if "macro_f1_music" in figures:
            ref, cand = (mean(r, seeds, fold, "macro_f1_music") for r in (reference, candidate))
            if cand < ref:
                out.failures.append(f"hold out {fold}: real music {cand:.3f} (mean), below "
                                    f"{ref:.3f}")
    return out


def mean(reports: Reports, seeds: list[str], fold: str, figure: str) -> float:
    """One figure of one fold averaged over ``seeds``."""
    return sum(reports[s][fold][figure] for s in seeds) / len(seeds)


def print_comparison(result: Comparison, names: tuple[str, str], instruments: bool = False
                     ) -> None:
    """A table of every common figure (each seed, then the mean; with ``instruments`` each
    instrument's F1 too) and the verdict."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"held-out F1: {names[0]} (reference) -> {names[1]} (candidate),"
                        f" train seeds {' / '.join(result.seeds)}")
    for column in ("hold out", "figure", "reference", "candidate", "mean change"):
        table.add_column(column, justify="right" if column[0] in "rcm" else "left")
    rows = [*result.figures, *(result.instruments if instruments else [])]
    for fold in result.folds:
        for figure in rows:
            cells = [" / ".join(f"{r[s][fold][figure]:.3f}" for s in result.seeds)
                     for r in (result.reference, result.candidate)]
            change = (mean(result.candidate, result.seeds, fold, figure)
                      - mean(result.reference, result.seeds, fold, figure))
            table.add_row(fold, FIGURES.get(figure, figure), *cells, f"{change:+.3f}")
    Console(width=120).print(table)  # the report is the command's output: stdout
    if result.failures:
        print("the candidate fails the rule (held-out macro F1 up on every fold and seed, "
              "real music not down on any fold's mean): " + "; ".join(result.failures))
    else:
        print("the candidate passes the rule: held-out macro F1 up on every fold and seed, "
              "real music not down on any fold's mean")
