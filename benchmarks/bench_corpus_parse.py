"""What parsing the real-music corpus over the cores saves: music21's sixteen quartet
movements parsed one after the other and over the cores (as `load_corpus` does on a first
run, before its cache file exists), alternating in one process so that the figures compare
as a ratio on a noisy machine; then the cache file read back, as every later run does.

    python benchmarks/bench_corpus_parse.py [--rounds 2] [--cores N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time

from instrlab.scores.corpus import QUARTETS, _parse, load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each way")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="processes of the parallel parse (default: all cores)")
    args = parser.parse_args()
    seq, par = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        one = {p: _parse(p) for p in QUARTETS}
        seq.append(time.perf_counter() - start)
        start = time.perf_counter()
        with mp.get_context("spawn").Pool(args.cores) as pool:
            many = dict(zip(QUARTETS, pool.map(_parse, QUARTETS, chunksize=1)))
        par.append(time.perf_counter() - start)
        assert one == many, "the parallel parse differs from the sequential one"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INSTRLAB_CACHE"] = tmp
        load_corpus()  # writes the cache file (through _parse_all)
        load_corpus.cache_clear()  # what a new process starts with
        start = time.perf_counter()
        load_corpus()
        cached = time.perf_counter() - start
    s, p = statistics.median(seq), statistics.median(par)
    print(f"{len(QUARTETS)} movements, medians of {args.rounds} rounds:")
    print(f"  one after the other: {s:6.1f} s")
    print(f"  over {args.cores} cores:      {p:6.1f} s   ({s / p:.2f}x faster)")
    print(f"  cache file read back: {cached:5.2f} s")


if __name__ == "__main__":
    main()
