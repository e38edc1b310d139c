"""The ``predict`` sub-command: which instruments play in audio files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from instrlab.errors import InstrlabError


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from instrlab.predict import load_model, predict_audio, read_audio, summarise
    from instrlab.training.metrics import binarize

    if args.min_labels is not None and args.min_labels < 0:
        raise InstrlabError(f"--min-labels must be >= 0, got {args.min_labels}")
    loaded = load_model(args.model)
    meta = loaded.meta
    names = meta.get("instrument_labels") or meta["instrument_names"]
    thresholds = meta["thresholds"] if args.threshold is None else [args.threshold] * len(names)
    min_labels = loaded.min_labels if args.min_labels is None else args.min_labels
    failed = 0
    out = Console()
    for file in args.files:
        try:
            audio = read_audio(Path(file), meta["sample_rate"])
            probs = predict_audio(loaded, audio)
        except InstrlabError as exc:
            print(f"instrlab: error: {exc}", file=sys.stderr)  # one line, never wrapped
            failed += 1
            continue
        summary = summarise(probs)
        plays = binarize(summary[None], thresholds, min_labels)[0]
        table = Table(title=f"{file} ({len(audio) / meta['sample_rate']:.1f} s, "
                            f"{len(probs)} window{'s' if len(probs) != 1 else ''})")
        table.add_column("instrument")
        table.add_column("probability", justify="right")
        table.add_column("plays", justify="center")
        table.add_column("windows", justify="right")
        order = [i for i in np.argsort(-summary, kind="stable") if args.all or plays[i]]
        for i in order:
            hits = int((probs[:, i] >= thresholds[i]).sum())
            table.add_row(names[i], f"{summary[i]:.3f}", "yes" if plays[i] else "",
                          f"{hits}/{len(probs)}")
        if not len(order):
            table.add_row("(no instrument above threshold)", "", "", "")
        out.print(table)
    return 1 if failed else 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("predict", help="say which instruments play in audio files",
                       description="Load a logged model and print, for each WAV/FLAC/OGG file "
                                   "(any length, any sample rate), the instruments it hears "
                                   "with their probabilities. Long files are cut into clips "
                                   "and summarised by the highest probability.")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--model", required=True,
                   help="run id, runs:/ or models:/ URI, model directory or registered name")
    p.add_argument("--threshold", type=float, default=None,
                   help="probability threshold for all instruments (default: the model's)")
    p.add_argument("--min-labels", type=int, default=None, metavar="N",
                   help="name at least the N most probable instruments per file; 0 names only "
                        "those over threshold (default: the model's, 1 for models trained by "
                        "default)")
    p.add_argument("--all", action="store_true", help="list every instrument, not only hits")
    p.set_defaults(handler=cmd_predict)


