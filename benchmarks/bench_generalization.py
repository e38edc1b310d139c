"""Cross-soundfont figures of the default pipeline, and what its robustness options cost.

For each variant: ``instrlab main`` (dataset + training, timed, in a private MLflow store
and dataset cache), then ``instrlab evaluate`` of the trained model on the same protocol
rendered with each evaluation soundfont (clean clips, seed 1: no clip heard in training).
Prints one table: wall time of main, test macro F1, and macro F1 per soundfont.

    python benchmarks/bench_generalization.py                      # default vs. plain
    python benchmarks/bench_generalization.py --variants default   # just the default
    python benchmarks/bench_generalization.py --variants default --train-seeds 0 1 2

With several training seeds the dataset is rendered once (shared cache); the rows show
how much the figures move with the seed alone, and a last row their mean.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

VARIANTS = {
    "default": [],
    # the pipeline without any robustness option: the seed's recipe with this model
    "plain": ["--preset", "plain"],
}
SOUNDFONTS = ["FluidR3_GM.sf2", "MuseScore_General.sf3"]


def instrlab(args: list[str], env: dict[str, str]) -> float:
    """Run the instrlab CLI; returns its wall time in seconds (raises on failure)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "instrlab.cli", *args], env=env, check=True)
    return time.perf_counter() - start


def run_variant(name: str, extra: list[str], n_samples: int, n_eval: int,
                soundfonts: list[str], root: Path) -> dict[str, float]:
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "INSTRLAB_CACHE": str(root / "cache")}
    wall = instrlab(["main", "--n-samples", str(n_samples), "--no-progress",
                     "--heldout-samples", "0", "--run-name", f"bench {name}", *extra], env)
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list",
                             filter_string=f"attributes.run_name = 'bench {name}'")[0]
    row = {"main_s": wall, "test": run.data.metrics["test_macro_f1"]}
    for sf in soundfonts:
        tag = f"bench {name} on {sf}"
        instrlab(["evaluate", run.info.run_id, "--n-samples", str(n_eval), "--no-progress",
                  "--eval-soundfont", sf, "--run-name", tag], env)
        ev = mlflow.search_runs(experiment_names=["instrlab-seed12"], output_format="list",
                                filter_string=f"tags.instrlab.trained_run_id = "
                                              f"'{run.info.run_id}'",
                                order_by=["attributes.start_time DESC"])[0]
        row[sf] = ev.data.metrics["test_macro_f1"]
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="pipelines to measure (default: all)")
    p.add_argument("--n-samples", type=int, default=8000, help="training clips (default 8000)")
    p.add_argument("--n-eval", type=int, default=2000,
                   help="clips per evaluation soundfont (default: 2000)")
    p.add_argument("--soundfont", action="append", default=None,
                   help=f"evaluation soundfont, repeatable (default: {', '.join(SOUNDFONTS)})")
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0], metavar="N",
                   help="train each variant once per seed (default: 0)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep the MLflow store and caches in DIR (default: a temporary one)")
    args = p.parse_args(argv)
    soundfonts = args.soundfont or SOUNDFONTS
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="instrlab-bench-gen-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        for name in args.variants:
            for seed in args.train_seeds:
                label = name if len(args.train_seeds) == 1 else f"{name} seed {seed}"
                rows[label] = run_variant(label, [*VARIANTS[name], "--train-seed", str(seed)],
                                          args.n_samples, args.n_eval, soundfonts, root)
    columns = ["main_s", "test", *soundfonts]
    if len(args.train_seeds) > 1:
        for name in args.variants:
            group = [row for label, row in rows.items() if label.startswith(f"{name} seed ")]
            rows[f"{name} mean"] = {k: sum(r[k] for r in group) / len(group) for k in columns}
    print(" | ".join(["variant", "main wall (s)", "test macro F1", *soundfonts]))
    for label, row in rows.items():
        print(" | ".join([label, f"{row['main_s']:.0f}",
                          *(f"{row[k]:.4f}" for k in columns[1:])]))
    first = {name: next(row for label, row in rows.items() if label.startswith(name))
             for name in args.variants}
    if "default" in first and "plain" in first:
        print(f"robustness cost: {first['default']['main_s'] / first['plain']['main_s']:.2f}x "
              "the plain pipeline's wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
