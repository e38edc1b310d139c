"""A tuning study against the untuned defaults, on the same data (issue: Optuna studies).

Target: a 20-trial study on 2000 samples finishes on a 2-core machine in at most 15
minutes thanks to pruning. This script generates (or reuses) the dataset, trains the
untuned defaults (Adam 1e-3, batch 64) once, runs the study with the default search
space (lr log-uniform 1e-4..1e-2, batch size 16..256) and median pruning, retrains the
best trial and prints: trials complete/pruned, best validation macro F1 against the
defaults', test macro F1 of both (each scored once), and wall times.

    python benchmarks/bench_tune.py                      # the target: 2000 clips, 20 trials
    python benchmarks/bench_tune.py --n-samples 500 --n-trials 8 --epochs 4   # smaller

MLflow runs and the Optuna journal go to a temporary directory unless --out is given;
the dataset goes to the usual cache ($INSTRLAB_CACHE).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def baseline(ds, model_cfg, train_cfg) -> dict[str, float]:  # noqa: ANN001
    """The untuned defaults: best validation macro F1 and test macro F1 (no MLflow)."""
    from instrlab.models.factory import build_model
    from instrlab.training import fit, predict_proba
    from instrlab.training.metrics import binarize, macro_f1

    splits = ds.split()
    import torch

    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg, tuple(ds.features.shape[1:]), len(ds.instrument_names))
    t0 = time.perf_counter()
    result = fit(model, ds.features, ds.labels, splits["train"], splits["val"], train_cfg,
                 progress=False)
    probs = predict_proba(model, ds.features, splits["test"])
    pred = binarize(probs, result.thresholds, result.min_labels)
    test = macro_f1(ds.labels[splits["test"]], pred)
    return {"val": result.best_val_macro_f1, "test": float(test),
            "seconds": time.perf_counter() - t0}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--n-trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--pruner", default="median", choices=["none", "median", "halving"])
    p.add_argument("--pruner-startup-trials", type=int, default=5)
    p.add_argument("--pruner-warmup-epochs", type=int, default=2)
    p.add_argument("--n-workers", type=int, default=2,
                   help="worker processes (default: 2, one per core)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (default: 1)")
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="keep mlflow.db, mlruns/ and the journal here (default: a temp dir)")
    args = p.parse_args(argv)

    from instrlab.dataset import DatasetConfig
    from instrlab.models.factory import ModelConfig
    from instrlab.pipeline import prepare_dataset
    from instrlab.training import TrainConfig
    from instrlab.tune import TuneOptions, run_tune

    out = args.out or Path(tempfile.mkdtemp(prefix="instrlab-bench-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out / 'mlflow.db'}"
    data = DatasetConfig(n_samples=args.n_samples)
    model = ModelConfig()
    train = TrainConfig(epochs=args.epochs, num_threads=args.threads)

    t0 = time.perf_counter()
    ds = prepare_dataset(data, progress=False)
    t_data = time.perf_counter() - t0
    print(f"dataset {ds.name}: {len(ds)} clips ({t_data:.0f} s to build or open)")
    base = baseline(ds, model, train)
    print(f"untuned defaults (lr 0.001, batch 64, {args.epochs} epochs): best val macro F1 "
          f"{base['val']:.4f}, test macro F1 {base['test']:.4f} [{base['seconds']:.0f} s]",
          flush=True)

    opts = TuneOptions(study_name="bench", storage=str(out / "bench-journal.log"),
                       n_trials=args.n_trials, pruner=args.pruner,
                       pruner_startup_trials=args.pruner_startup_trials,
                       pruner_warmup_epochs=args.pruner_warmup_epochs,
                       n_workers=args.n_workers, sampler_seed=args.sampler_seed,
                       progress=False, retrain_best=True)
    t1 = time.perf_counter()
    result = run_tune(opts, data, model, train)
    wall = time.perf_counter() - t1
    c = result.counts
    print()
    print(f"study: {c['complete'] + c['pruned'] + c['failed']} trials, {c['complete']} "
          f"complete, {c['pruned']} pruned, {c['failed']} failed; {args.n_workers} worker(s) x "
          f"{args.threads} thread(s), {os.cpu_count()} cores")
    print(f"best val macro F1 {result.best_value:.4f} (trial {result.best_trial}: "
          f"{result.best_params}) vs untuned {base['val']:.4f} "
          f"({result.best_value - base['val']:+.4f})")
    print(f"test macro F1 of the retrained best {result.test_macro_f1:.4f} vs untuned "
          f"{base['test']:.4f}")
    print(f"wall time: study {result.seconds:.0f} s ({result.seconds / 60:.1f} min, target "
          f"<= 15 min), with retraining and testing the best {wall:.0f} s; baseline "
          f"{base['seconds']:.0f} s; dataset {t_data:.0f} s")
    print(f"MLflow store and journal: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
