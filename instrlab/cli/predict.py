"""The ``predict`` sub-command: which instruments play in audio files."""

from __future__ import annotations

import argparse
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


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from instrlab.predict import predict_audio, read_audio, summarise
    from instrlab.training.metrics import binarize

    if args.min_labels is not None and args.min_labels < 0:
        raise InstrlabError(f"--min-labels must be >= 0, got {args.min_labels}")
    loaded = load_model_arg(args.model, args.trust_pickled_model)
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
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--threshold", type=float, default=None,
                   help="probability threshold for all instruments (default: the model's)")
    p.add_argument("--min-labels", type=int, default=None, metavar="N",
                   help="name at least the N most probable instruments per file; 0 names only "
                        "those over threshold (default: the model's, 1 for models trained by "
                        "default)")
    p.add_argument("--all", action="store_true", help="list every instrument, not only hits")
    add_trust_option(p)
    p.set_defaults(handler=cmd_predict)


