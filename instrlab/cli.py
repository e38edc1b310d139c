"""The ``instrlab`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from instrlab.errors import InstrlabError

if TYPE_CHECKING:
    from instrlab.augment import AugmentConfig

Handler = Callable[[argparse.Namespace], int]


def add_dataset_options(p: argparse.ArgumentParser, evaluation: bool = False) -> None:
    """Options that choose a dataset; shared by generate, train, main, evaluate and tune.

    ``evaluation``: clean clips (no augmentation) and seed 1 by default, so that no clip
    of an evaluation set was heard in training (which uses seed 0).
    """
    from instrlab.augment import DEFAULT as DEFAULT_AUGMENT
    from instrlab.augment import AugmentConfig

    g = p.add_argument_group("dataset")
    g.add_argument("--n-samples", type=int, default=8000,
                   help="number of clips to synthesize (default: 8000, as the seed)")
    g.add_argument("--instruments", default="seed12",
                   help="registered instrument set (default: seed12; see `instrlab list`)")
    g.add_argument("--synth", default="fluidsynth", help="synth backend (default: fluidsynth)")
    g.add_argument("--soundfont", default=None,
                   help="SoundFont path or file name (default: $INSTRLAB_SOUNDFONT or "
                        "FluidR3_GM.sf2 found in the usual system places)")
    if evaluation:
        g.add_argument("--features", default=None,
                       help="feature extractor (default: the model's, with its parameters)")
    else:
        g.add_argument("--features", default="logmel",
                       help="feature extractor (default: logmel; seed_image is the seed's input)")
    seed = 1 if evaluation else 0
    g.add_argument("--seed", type=int, default=seed,
                   help=f"master seed: same seed, same bytes (default: {seed})")
    g.add_argument("--min-instruments", type=int, default=1,
                   help="fewest instruments in a clip (default: 1)")
    g.add_argument("--max-instruments", type=int, default=4,
                   help="most instruments in a clip (default: 4)")
    g.add_argument("--clip-seconds", type=float, default=5.0,
                   help="clip length in seconds (default: 5.0)")
    g.add_argument("--reverb", action="store_true",
                   help="render with FluidSynth's reverb (slower; default: dry)")
    g.add_argument("--chorus", action="store_true",
                   help="render with FluidSynth's chorus (slower; default: dry)")
    g.add_argument("--extra-soundfont", action="append", default=[], metavar="SOUNDFONT",
                   help="render with this soundfont too (repeatable); see --soundfont-per")
    g.add_argument("--soundfont-per", choices=["sample", "instrument"], default="sample",
                   help="with extra soundfonts: each clip draws one soundfont, or each "
                        "instrument its own (default: sample)")
    add_augment_options(p, AugmentConfig() if evaluation else DEFAULT_AUGMENT)
    g.add_argument("--workers", type=int, default=0,
                   help="worker processes for generation (default: 0 = all cores); the "
                        "output is byte-identical whatever the number")


def add_augment_options(p: argparse.ArgumentParser, d: AugmentConfig) -> None:
    """Audio augmentation options with defaults ``d``."""
    title = ("augmentation (off by default here: clean clips)" if not d.active else
             f"augmentation of {d.prob:.0%} of the training clips by default, seeded per clip "
             "(robustness to unseen soundfonts; 0 turns an option off)")
    a = p.add_argument_group(title)
    a.add_argument("--augment-gain-db", type=float, default=d.gain_db, metavar="DB",
                   help=f"move each instrument's level by up to +-DB before mixing "
                        f"(default: {d.gain_db:g})")
    a.add_argument("--augment-stem-eq-db", type=float, default=d.stem_eq_db, metavar="DB",
                   help="give each instrument its own smooth random EQ within +-DB "
                        "(--augment-stem-eq-knots points, 50 Hz..16 kHz): another recording of "
                        f"it (default: {d.stem_eq_db:g})")
    a.add_argument("--augment-stem-eq-knots", type=int, default=d.stem_eq_knots, metavar="N",
                   help="control points of the stem EQ and tilt; more points, finer "
                        f"curves (default: {d.stem_eq_knots})")
    a.add_argument("--augment-stem-tilt-db", type=float, default=d.stem_tilt_db, metavar="DB",
                   help="tilt each instrument by up to +-DB per octave around 1 kHz: darker "
                        f"or brighter recordings (default: {d.stem_tilt_db:g})")
    a.add_argument("--augment-formant-shift", type=int, default=d.formant_shift, metavar="N",
                   help="render each instrument up to +-N semitones off pitch and resample it "
                        f"back: a larger or smaller body (default: {d.formant_shift})")
    a.add_argument("--augment-voicing", type=float, default=d.voicing, metavar="S",
                   help="vary each instrument's SoundFont envelope, filter and vibrato by S "
                        "(0..1) of their ranges: another soundfont's take on the preset "
                        f"(default: {d.voicing:g})")
    a.add_argument("--augment-transpose", type=int, default=d.transpose, metavar="N",
                   help="move each instrument's notes by up to +-N semitones, so other sample "
                        f"zones of the soundfont sound (default: {d.transpose})")
    a.add_argument("--augment-tilt-db", type=float, default=d.tilt_db, metavar="DB",
                   help=f"random spectral tilt of up to +-DB per octave (default: {d.tilt_db:g})")
    a.add_argument("--augment-reverb-prob", type=float, default=d.reverb_prob, metavar="P",
                   help="share of clips put in a synthetic room, RT60 0.2..1.2 s "
                        f"(default: {d.reverb_prob:g})")
    a.add_argument("--augment-noise-snr", type=float, nargs=2, default=d.noise_snr_db,
                   metavar=("LOW", "HIGH"),
                   help="add white noise at an SNR in LOW..HIGH dB (default: none)")
    a.add_argument("--augment-prob", type=float, default=d.prob, metavar="P",
                   help=f"share of training clips augmented; the rest stay clean "
                        f"(default: {d.prob:g})")
    a.add_argument("--augment-all-splits", action="store_true",
                   help="augment validation and test clips too (default: training clips only)")
    a.add_argument("--no-augment", action="store_true",
                   help="turn every augmentation option off (clean clips, as the seed)")


def dataset_config_from_args(args: argparse.Namespace):  # noqa: ANN201
    """The :class:`DatasetConfig` that ``add_dataset_options`` describes."""
    from instrlab.augment import AugmentConfig
    from instrlab.dataset import DatasetConfig
    from instrlab.scores import ScoreConfig

    augment = AugmentConfig() if args.no_augment else AugmentConfig(
                            gain_db=args.augment_gain_db, tilt_db=args.augment_tilt_db,
                            reverb_prob=args.augment_reverb_prob,
                            noise_snr_db=tuple(args.augment_noise_snr)
                            if args.augment_noise_snr else None,
                            stem_eq_db=args.augment_stem_eq_db,
                            stem_eq_knots=args.augment_stem_eq_knots, voicing=args.augment_voicing,
                            transpose=args.augment_transpose,
                            stem_tilt_db=args.augment_stem_tilt_db,
                            formant_shift=args.augment_formant_shift,
                            prob=args.augment_prob, train_only=not args.augment_all_splits)
    score = ScoreConfig(min_instruments=args.min_instruments,
                        max_instruments=args.max_instruments, clip_seconds=args.clip_seconds)
    return DatasetConfig(n_samples=args.n_samples, instruments=args.instruments,
                         synth=args.synth, soundfont=args.soundfont or None,
                         features=args.features,
                         seed=args.seed, reverb=args.reverb, chorus=args.chorus, score=score,
                         extra_soundfonts=tuple(args.extra_soundfont),
                         soundfont_per=args.soundfont_per, augment=augment)


def cmd_generate(args: argparse.Namespace) -> int:
    from instrlab.console import console
    from instrlab.dataset import generate_dataset, open_dataset
    from instrlab.reports import stats_table

    cfg = dataset_config_from_args(args)
    path = generate_dataset(cfg, out=args.out, workers=args.workers, keep_audio=args.keep_audio,
                            progress=not args.quiet)
    ds = open_dataset(path)
    if not args.quiet:
        console.print(stats_table(ds.stats, ds.instrument_names))
    print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from instrlab.reports import registry_table

    Console().print(registry_table(args.kind))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instrlab",
        description="Synthesize labelled multi-instrument audio, train models that say which "
                    "instruments play, and track every experiment in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("generate", help="build (or reuse, or resume) a synthesized dataset",
                       description="Render random MIDI scores with a synth backend, extract "
                                   "features and store them memory-mapped, with labels, a "
                                   "manifest and statistics. An existing dataset with the "
                                   "same identity is reused; an interrupted build resumes.")
    add_dataset_options(p)
    p.add_argument("--out", type=Path, default=None,
                   help="dataset directory (default: a content-named directory under "
                        "$INSTRLAB_CACHE or ~/.cache/instrlab/datasets)")
    p.add_argument("--keep-audio", type=int, default=0, metavar="K",
                   help="also keep WAV and MIDI files of the first K samples (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("list", help="list registered components and where they come from",
                       description="Every registered instrument set, synth backend, feature "
                                   "extractor and model, with its source (built-in, plugin "
                                   "file or entry point).")
    p.add_argument("kind", nargs="?", choices=["instruments", "synths", "features", "models"],
                   help="only this registry")
    p.set_defaults(handler=cmd_list)

    from instrlab import commands

    for register in commands.EXTRA_COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InstrlabError as exc:
        print(f"instrlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("instrlab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
