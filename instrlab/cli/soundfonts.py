"""The ``soundfonts`` sub-command: which soundfonts play an instrument from the same samples."""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from typing import Any

from instrlab.errors import InstrlabError


def report(names: list[str], instruments: str) -> dict[str, Any]:
    """Presets, pairwise overlaps, per-pair summaries and sample families, as plain data."""
    from instrlab.instruments import get_instrument_set
    from instrlab.synth.provenance import (
        SHARED_THRESHOLD,
        collect,
        compare_soundfonts,
        sample_families,
        soundfont_labels,
    )
    from instrlab.synth.sf2 import read_soundfont
    from instrlab.synth.soundfonts import find_soundfont

    if len(names) < 2:
        raise InstrlabError("soundfonts compares at least two soundfonts; name one more")
    paths = [find_soundfont(name) for name in names]
    labels = soundfont_labels(names)
    iset = get_instrument_set(instruments)
    presets = collect(paths, iset)
    overlaps = compare_soundfonts(paths, iset, labels)
    summary = []
    for a, b in combinations(labels, 2):
        pair = [o for o in overlaps if (o.a, o.b) == (a, b)]
        summary.append({"a": a, "b": b, "shared": sum(o.shared for o in pair), "of": len(pair),
                        "instruments": [o.instrument for o in pair if o.shared]})
    return {
        "instrument_set": iset.name,
        "threshold": SHARED_THRESHOLD,
        "soundfonts": [{"label": label, "path": str(path), "name": read_soundfont(path).name}
                       for label, path in zip(labels, paths)],
        "instruments": [
            {"name": inst.name, "bank": inst.bank, "program": inst.program,
             "presets": {label: {"preset": p.preset, "bank": p.bank, "program": p.program,
                                 "samples": len(p.samples)}
                         for label, p in zip(labels, presets[inst.name])}}
            for inst in iset.instruments
        ],
        "pairs": [o.to_dict() for o in overlaps],
        "summary": summary,
        "families": sample_families(overlaps),
    }


def summary_line(item: dict[str, Any]) -> str:
    """"B shares samples with A for n of N instruments: ..." for one pair."""
    text = f"{item['b']} shares samples with {item['a']} for {item['shared']} of {item['of']} " \
           "instruments"
    return f"{text}: {', '.join(item['instruments'])}" if item["instruments"] else text


def cmd_soundfonts(args: argparse.Namespace) -> int:
    data = report(args.soundfonts, args.instruments)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    labels = [sf["label"] for sf in data["soundfonts"]]
    table = Table(title=f"sample provenance, instrument set {data['instrument_set']} "
                        f"(shared: >= {data['threshold']:.0%} of either preset's samples)")
    table.add_column("instrument", no_wrap=True)
    table.add_column("program", justify="right")
    for n in range(1, len(labels) + 1):
        table.add_column(f"[{n}] preset")
    numbered = list(combinations(range(1, len(labels) + 1), 2))
    for i, j in numbered:
        table.add_column(f"[{i}]~[{j}] shared")
    pairs = {(p["instrument"], p["a"], p["b"]): p for p in data["pairs"]}
    for inst in data["instruments"]:
        cells = [inst["presets"][label]["preset"] for label in labels]
        for i, j in numbered:
            p = pairs[inst["name"], labels[i - 1], labels[j - 1]]
            how = f" {', '.join(p['matched_by'])}" if p["matched_by"] else ""
            cells.append(f"{'yes' if p['shared'] else 'no'} {p['overlap']:.2f}{how}")
        table.add_row(inst["name"], str(inst["program"]), *cells)
    for n, sf in enumerate(data["soundfonts"], 1):
        print(f"[{n}] {sf['label']}: {sf['path']} ({sf['name']})")
    out = Console()
    if not out.is_terminal:
        out = Console(width=1000)  # a file or pipe gets the table at its natural width
    out.print(table)
    for item in data["summary"]:
        print(summary_line(item))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "soundfonts", help="say which soundfonts play an instrument from the same samples",
        description="For each instrument of an instrument set, find its preset in every "
                    "soundfont (bank 0 when its bank is missing, as FluidSynth does) and "
                    "compare the samples the presets play: by the 16-bit data's SHA-256, by "
                    "loop points (rate, loop start, loop length: survives SF3 re-encoding and "
                    "renaming) and by normalized name plus root key. Two presets share samples "
                    "when at least half of either one's samples are found in the other; the "
                    "overlap figure is that larger share. A soundfont evaluated on an "
                    "instrument whose samples it shares with the training soundfont re-measures "
                    "the training recordings.")
    p.add_argument("soundfonts", nargs="+", metavar="SOUNDFONT",
                   help="two or more .sf2/.sf3 files, by path or by file name (searched in the "
                        "usual soundfont directories, e.g. FluidR3_GM.sf2)")
    p.add_argument("--instruments", default="seed12", metavar="SET",
                   help="registered instrument set whose presets are compared (default: "
                        "seed12; see `instrlab list instruments`)")
    p.add_argument("--json", action="store_true",
                   help="print machine-readable JSON (presets, every pair's overlap, a summary "
                        "per pair and the sample families per instrument) instead of the table")
    p.set_defaults(handler=cmd_soundfonts)

