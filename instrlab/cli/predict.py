"""The ``predict`` sub-command: which instruments play in audio files."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrlab.errors import InstrlabError

if TYPE_CHECKING:
    from instrlab.predict import LoadedModel

MODEL_HELP = ("run id, runs:/ or models:/ URI, ./local/dir or /abs/dir, or a registered model "
              "name; a 32-hex run id is always a run and a bare name always a registered "
              "model (a folder of that name here is an error: write ./NAME)")


def add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-pickled-model", action="store_true",
                   help="also load a model that an older instrlab logged as a pickle; "
                        "unpickling runs any code the file holds, so only for models you "
                        "trust (retraining stores weights only)")


def load_model_arg(ref: str, trust_pickled: bool) -> LoadedModel:
    """:func:`instrlab.predict.load_model`, with a warning line for a trusted pickle."""
    from instrlab.predict import load_model

    loaded = load_model(ref, trust_pickled=trust_pickled)
    if loaded.pickled:
        print(f"instrlab: warning: loaded pickled model {ref} because of "
              "--trust-pickled-model; retrain it with `instrlab main ...` to store weights "
              "only", file=sys.stderr)
    return loaded


def check_threshold(threshold: float | None) -> None:
    """A probability threshold must lie in (0, 1]: 1 names only the ``--min-labels`` most
    probable instruments."""
    if threshold is not None and not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise InstrlabError(f"--threshold must be a number in (0, 1], got {threshold}")


def cmd_predict(args: argparse.Namespace) -> int:
    from instrlab.predict import predict_file, summarise
    from instrlab.training.metrics import binarize

    if args.min_labels is not None and args.min_labels < 0:
        raise InstrlabError(f"--min-labels must be >= 0, got {args.min_labels}")
    check_threshold(args.threshold)
    loaded = load_model_arg(args.model, args.trust_pickled_model)
    meta = loaded.meta
    names = meta.get("instrument_labels") or meta["instrument_names"]
    thresholds = meta["thresholds"] if args.threshold is None else [args.threshold] * len(names)
    min_labels = loaded.min_labels if args.min_labels is None else args.min_labels
    printer = PRINTERS[args.format](names, thresholds, args.all)
    failed = 0
    for file in args.files:
        try:
            probs, seconds = predict_file(loaded, Path(file))
        except InstrlabError as exc:
            print(f"instrlab: error: {exc}", file=sys.stderr)  # one line, never wrapped
            failed += 1
            continue
        summary = summarise(probs)
        plays = binarize(summary[None], thresholds, min_labels)[0]
        printer.add(file, seconds, probs, summary, plays)
    printer.close()
    return 1 if failed else 0


class TablePrinter:
    """One rich table per file, printed as soon as the file is done."""

    def __init__(self, names: list[str], thresholds: list[float], show_all: bool) -> None:
        from rich.console import Console

        self.names, self.thresholds, self.show_all = names, thresholds, show_all
        self.out = Console()

    def add(self, file: str, seconds: float, probs: Any, summary: Any, plays: Any) -> None:
        import numpy as np
        from rich.table import Table

        table = Table(title=f"{file} ({seconds:.1f} s, "
                            f"{len(probs)} window{'s' if len(probs) != 1 else ''})")
        table.add_column("instrument")
        table.add_column("probability", justify="right")
        table.add_column("plays", justify="center")
        table.add_column("windows", justify="right")
        order = [i for i in np.argsort(-summary, kind="stable") if self.show_all or plays[i]]
        for i in order:
            hits = int((probs[:, i] >= self.thresholds[i]).sum())
            table.add_row(self.names[i], f"{summary[i]:.3f}", "yes" if plays[i] else "",
                          f"{hits}/{len(probs)}")
        if not len(order):
            table.add_row("(no instrument above threshold)", "", "", "")
        self.out.print(table)

    def close(self) -> None:
        """Nothing is pending."""


class JsonPrinter:
    """One JSON list, a record per file, printed once all files are done."""

    def __init__(self, names: list[str], thresholds: list[float], show_all: bool) -> None:
        self.names = names
        self.records: list[dict[str, Any]] = []

    def add(self, file: str, seconds: float, probs: Any, summary: Any, plays: Any) -> None:
        self.records.append({
            "path": file, "duration_s": round(seconds, 3), "windows": len(probs),
            "instruments": {name: {"probability": float(summary[i]), "plays": bool(plays[i])}
                            for i, name in enumerate(self.names)},
        })

    def close(self) -> None:
        print(json.dumps(self.records, indent=2))


class CsvPrinter:
    """A header line, then a row per file: path, duration_s, <name>_prob, <name>_plays."""

    def __init__(self, names: list[str], thresholds: list[float], show_all: bool) -> None:
        self.writer = csv.writer(sys.stdout, lineterminator="\n")
        self.writer.writerow(["path", "duration_s",
                              *(f"{n}_{c}" for n in names for c in ("prob", "plays"))])

    def add(self, file: str, seconds: float, probs: Any, summary: Any, plays: Any) -> None:
        cells = [x for p, y in zip(summary, plays) for x in (f"{float(p):.6f}", int(bool(y)))]
        self.writer.writerow([file, f"{seconds:.3f}", *cells])
        sys.stdout.flush()

    def close(self) -> None:
        """Every row is written."""


PRINTERS: dict[str, Any] = {"table": TablePrinter, "json": JsonPrinter, "csv": CsvPrinter}


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("predict", help="say which instruments play in audio files",
                       description="Load a logged model and print, for each WAV/FLAC/OGG file "
                                   "(any length, any sample rate), the instruments it hears "
                                   "with their probabilities. Long files are cut into clips "
                                   "and summarised by the highest probability.")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--threshold", type=float, default=None,
                   help="probability threshold for all instruments, in (0, 1]; 1 names only "
                        "the --min-labels most probable ones (default: the model's)")
    p.add_argument("--min-labels", type=int, default=None, metavar="N",
                   help="name at least the N most probable instruments per file; 0 names only "
                        "those over threshold (default: the model's, 1 for models trained by "
                        "default)")
    p.add_argument("--all", action="store_true",
                   help="list every instrument, not only hits (json and csv list all)")
    p.add_argument("--format", choices=sorted(PRINTERS), default="table",
                   help="table (default); json: a list with a record per file; csv: a header "
                        "and a row per file with <instrument>_prob and <instrument>_plays")
    add_trust_option(p)
    p.set_defaults(handler=cmd_predict)


