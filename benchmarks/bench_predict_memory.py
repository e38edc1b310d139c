"""Peak memory of `instrlab predict` on a short and a long file (issue 13, item 8).

Writes a 10-minute and a long (default 3-hour) 16-bit mono 22.05 kHz WAV in blocks into a
temporary folder, runs ``python -m instrlab.cli predict`` on each under ``/usr/bin/time -v``
and prints both peak RSS figures and their ratio (target: within ~10 %, under 1 GB).

    python benchmarks/bench_predict_memory.py [--model RUN_ID] [--long-minutes 180]

Without ``--model`` it trains a tiny model into a temporary MLflow store first.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050
BLOCK_SECONDS = 60


def write_wav(path: Path, minutes: float) -> None:
    """A quiet noise-and-tone WAV of ``minutes``, written a minute at a time."""
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
        for start in range(0, total, BLOCK_SECONDS * RATE):
            n = min(BLOCK_SECONDS * RATE, total - start)
            t = (start + np.arange(n)) / RATE
            f.write(0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n))


def train_tiny(root: Path, env: dict[str, str]) -> str:
    """Train a tiny model into ``env``'s MLflow store; its run id. It predicts as the
    default model does: averaged over the default's spectrum shifts."""
    from instrlab.config import TTA_SHIFTS

    subprocess.run([sys.executable, "-m", "instrlab.cli", "main", "--n-samples", "32",
                    "--epochs", "1", "--preset", "plain", "--workers", "1", "--no-progress",
                    "--tta-shifts", *map(str, TTA_SHIFTS)],
                   env=env, cwd=root, check=True, stdout=subprocess.DEVNULL)
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="attributes.status = 'FINISHED'")
    return next(r.info.run_id for r in runs if r.info.artifact_uri
                and mlflow.artifacts.list_artifacts(run_id=r.info.run_id, artifact_path="model"))


def peak_rss_mb(model: str, wav: Path, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of one `instrlab predict` run."""
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "instrlab.cli",
                           "predict", "--model", model, "--format", "csv", str(wav)],
                          env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"predict failed on {wav}:\n{proc.stderr}")
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if not found:
        sys.exit(f"no peak RSS in /usr/bin/time output:\n{proc.stderr}")
    return int(found.group(1)) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model to predict with (default: train a tiny one)")
    parser.add_argument("--short-minutes", type=float, default=10)
    parser.add_argument("--long-minutes", type=float, default=180)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        if not args.model:
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
            env["INSTRLAB_CACHE"] = str(root / "cache")
            args.model = train_tiny(root, env)
        cwd = root if "MLFLOW_TRACKING_URI" in env else Path.cwd()
        figures = []
        for minutes in (args.short_minutes, args.long_minutes):
            wav = root / f"{minutes:g}min.wav"
            write_wav(wav, minutes)
            mb, seconds = peak_rss_mb(args.model, wav, env, cwd)
            wav.unlink()
            figures.append(mb)
            print(f"{minutes:>6g} min: peak RSS {mb:7.1f} MB  ({seconds:.0f} s)", flush=True)
        print(f"ratio long/short: {figures[1] / figures[0]:.3f}")


if __name__ == "__main__":
    main()
