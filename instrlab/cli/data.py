"""Sub-commands about data and components: ``generate``, ``list`` and ``config``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from instrlab.cli.options import (
    add_config_options,
    add_dataset_options,
    add_heldout_options,
    add_train_options,
    config_from_args,
    config_paths,
    show,
)
from instrlab.config import ExperimentConfig


def cmd_generate(args: argparse.Namespace) -> int:
    from instrlab.console import console
    from instrlab.dataset import generate_dataset, open_dataset
    from instrlab.reports import stats_table

    cfg = config_from_args(args).data
    path = generate_dataset(cfg, out=args.out, workers=args.workers, keep_audio=args.keep_audio,
                            progress=not args.quiet)
    ds = open_dataset(path)
    if not args.quiet:
        console.print(stats_table(ds.stats, ds.instrument_names))
    print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from instrlab.plugins import loaded_summary
    from instrlab.reports import registry_table

    console = Console()
    console.print(registry_table(args.kind))
    for line in loaded_summary():  # which plugin code ran, and which ./plugins did not
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print every setting of the resolved configuration, one ``path = value`` per line."""
    cfg = config_from_args(args)
    for path, value in config_paths(cfg):
        text = repr(value) if isinstance(value, str) else show(value)
        print(f"{path} = {text}")
    return 0


def add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes for generation (default: 0 = all cores); the "
                        "output is byte-identical whatever the number")


def add_parsers(sub: Any) -> None:
    base = ExperimentConfig()
    p = sub.add_parser("generate", help="build (or reuse, or resume) a synthesized dataset",
                       description="Render random MIDI scores with a synth backend, extract "
                                   "features and store them memory-mapped, with labels, a "
                                   "manifest and statistics. An existing dataset with the "
                                   "same identity is reused; an interrupted build resumes.")
    add_dataset_options(p, base)
    add_config_options(p)
    add_workers_option(p)
    p.add_argument("--out", type=Path, default=None,
                   help="dataset directory (default: a content-named directory under "
                        "$INSTRLAB_CACHE or ~/.cache/instrlab/datasets)")
    p.add_argument("--keep-audio", type=int, default=0, metavar="K",
                   help="also keep WAV and MIDI files of the first K samples (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(handler=cmd_generate, resolve=config_from_args)

    p = sub.add_parser("list", help="list registered components and where they come from",
                       description="Every registered instrument set, synth backend, feature "
                                   "extractor and model, with its source (built-in, plugin "
                                   "file or entry point), then the entry points and plugin "
                                   "directories loaded and a ./plugins skipped (it loads only "
                                   "from this instrlab checkout or when INSTRLAB_PLUGINS "
                                   "names it).")
    p.add_argument("kind", nargs="?", choices=["instruments", "synths", "features", "models"],
                   help="only this registry")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("config", help="print the configuration that main would run with",
                       description="Resolve the preset, --config file, --set and options as "
                                   "`instrlab main` does and print every setting as "
                                   "`path = value`: the paths --set and config files take.")
    add_dataset_options(p, base)
    add_train_options(p, base)
    add_heldout_options(p, base)
    add_config_options(p)
    p.set_defaults(handler=cmd_config, resolve=config_from_args)
