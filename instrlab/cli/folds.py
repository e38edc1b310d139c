"""The ``folds`` sub-command: the leave-one-family-out benchmark, in MLflow."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from instrlab.cli.experiment import add_experiment_options, check_experiment
from instrlab.cli.options import config_from_args, show
from instrlab.folds.config import FoldsConfig


def _words(items: list[str]) -> tuple[str, ...]:
    """Soundfont names given as several arguments or as one MLproject string."""
    return tuple(w for item in items for w in item.replace(",", " ").split())


def _whole_numbers(words: tuple[str, ...], option: str, example: str,
                   skip: tuple[str, ...] = ()) -> tuple[int, ...]:
    """``words`` other than ``skip`` as integers, or a one-line error naming ``option``."""
    try:
        return tuple(int(w) for w in words if w not in skip)
    except ValueError:
        from instrlab.errors import InstrlabError

        raise InstrlabError(f"{option} takes whole numbers such as {example}, got "
                            f"{' '.join(words)}") from None


def folds_config(args: argparse.Namespace) -> FoldsConfig:
    given: dict[str, Any] = {}
    if getattr(args, "soundfonts", None):
        given["soundfonts"] = _words(args.soundfonts)
    if getattr(args, "hold_out", None):
        given["hold_out"] = _words(args.hold_out)
    if getattr(args, "eval_samples", None) is not None:
        given["eval_samples"] = args.eval_samples
    if getattr(args, "octaves", None) is not None:
        given["octaves"] = _whole_numbers(_words(args.octaves), "--octaves", "-1 1",
                                          skip=("none", "0"))
    if getattr(args, "train_seeds", None):
        given["train_seeds"] = _whole_numbers(_words(args.train_seeds), "--train-seeds",
                                              "0 1 2")
    if getattr(args, "music", None) is not None:
        given["music"] = None if args.music.lower() in ("none", "") else args.music
    return FoldsConfig(**given)


def cmd_folds(args: argparse.Namespace) -> int:
    from instrlab.folds.run import check_folds, on_experiment, run_folds
    from instrlab.tracking.runs import check_tracking, print_ui_hint

    cfg = config_from_args(args)
    folds_cfg = on_experiment(cfg, folds_config(args))
    fonts = folds_cfg.soundfonts  # every fold trains on some of them: weights may name any
    check_experiment(dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, soundfont=fonts[0], extra_soundfonts=fonts[1:])))
    check_folds(cfg, folds_cfg)  # before check_tracking creates the store
    check_tracking()
    result = run_folds(cfg, folds_cfg, workers=args.workers, progress=not args.no_progress,
                       run_name=args.run_name)
    means = {k: round(v["macro_f1"], 4) for k, v in result["report"].items()}
    seeds = result["seeds"]
    if len(seeds) > 1:
        each = {k: [round(seeds[s][k]["macro_f1"], 4) for s in seeds] for k in means}
        print(f"folds run {result['run_id']}: held-out macro F1, mean of train seeds "
              f"{' '.join(map(str, seeds))}: {means}; each seed: {each}")
    else:
        print(f"folds run {result['run_id']}: held-out macro F1 {means}")
    print_ui_hint(result["run_id"])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from instrlab.folds.compare import compare, load_reports, print_comparison
    from instrlab.tracking.runs import check_tracking

    check_tracking()
    (ref_name, ref), (cand_name, cand) = load_reports(args.reference), load_reports(
        args.candidate)
    result = compare(ref, cand)
    print_comparison(result, (ref_name, cand_name), instruments=args.instruments)
    return 1 if result.failures and args.check else 0


def add_parsers(sub: Any) -> None:
    d = FoldsConfig()
    p = sub.add_parser(
        "folds", help="leave-one-family-out: train without a sample family, test on it",
        description="For each --hold-out soundfont: train on the other soundfonts minus every "
                    "preset that shares recordings with a held-out one (per instrument, see "
                    "`instrlab soundfonts`), select on that data's validation split, and score "
                    "clean clips of the held-out soundfont. One MLflow parent run with a "
                    "nested run per fold; the parent's heldout_macro_f1_mean is sortable in "
                    "the UI. The experiment options below set the training of every fold "
                    "(use --n-samples and --epochs for a quick ablation).")
    g = p.add_argument_group("folds")
    g.add_argument("--soundfonts", nargs="+", default=None, metavar="SOUNDFONT",
                   help="every soundfont of the benchmark (default: the experiment's own, "
                        "--soundfont and --extra-soundfont, so the folds measure what main "
                        "trains on)")
    g.add_argument("--hold-out", action="append", default=None, metavar="SF[+SF]",
                   help="one fold per use; A+B holds out both, scored on A "
                        f"(default: {show(d.hold_out)})")
    g.add_argument("--eval-samples", type=int, default=None, metavar="N",
                   help=f"clean clips per held-out soundfont (default: {d.eval_samples})")
    g.add_argument("--octaves", nargs="+", default=None, metavar="N",
                   help="also score each held-out soundfont with every note moved by N octaves "
                        f"(repeatable values; none: only the training range; default: "
                        f"{show(d.octaves)})")
    g.add_argument("--music", default=None, metavar="NAME",
                   help="also score each held-out soundfont on real music: clips of this "
                        "evaluation score generator (corpus: string quartets from music21's "
                        f"corpus, never trained on; none: no such figure; default: {d.music})")
    g.add_argument("--train-seeds", nargs="+", default=None, metavar="T",
                   help="train every fold once per training seed (in place of --train-seed) "
                        "and report the mean over them besides each seed's figures: a claim "
                        "about a method needs several (default: once, with --train-seed)")
    add_experiment_options(p)
    p.set_defaults(handler=cmd_folds, resolve=config_from_args)
    c = sub.add_parser(
        "compare", help="two leave-one-family-out runs side by side: does a change hold?",
        description="Print the held-out figures of two `instrlab folds` runs (the parent "
                    "run ids they printed) side by side, fold by fold and training seed by "
                    "training seed, and whether the candidate passes the rule this project "
                    "adopts a change by: held-out macro F1 above the reference on every fold "
                    "and seed both runs have, and the mean real-music figure not below it on "
                    "any fold.")
    c.add_argument("reference", metavar="REFERENCE_RUN", help="run id of the reference folds "
                   "run (e.g. the default's)")
    c.add_argument("candidate", metavar="CANDIDATE_RUN", help="run id of the folds run with "
                   "the change")
    c.add_argument("--instruments", action="store_true",
                   help="also each instrument's held-out F1 (random notes), fold by fold")
    c.add_argument("--check", action="store_true",
                   help="exit with status 1 when the candidate fails the rule (for scripts)")
    c.set_defaults(handler=cmd_compare)
