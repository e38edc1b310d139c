"""What parsing the real-music corpus over the cores saves: music21's sixteen quartet
movements parsed one after the other, and by `load_corpus` on an empty cache (over the
cores, then the cache file written), alternating in one process so that the figures compare
as a ratio on a noisy machine; then the cache file read back, as every later run does.

    python benchmarks/bench_corpus_parse.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from instrlab.scores.corpus import QUARTETS, _parse, load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each way")
    args = parser.parse_args()
    seq, first = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            start = time.perf_counter()
            one = {p: _parse(p) for p in QUARTETS}
            seq.append(time.perf_counter() - start)
            os.environ["INSTRLAB_CACHE"] = os.path.join(tmp, str(r))  # an empty cache
            load_corpus.cache_clear()  # what a new process starts with
            start = time.perf_counter()
            parsed = load_corpus()
            first.append(time.perf_counter() - start)
            assert parsed == json.loads(json.dumps(one)), "load_corpus differs from _parse"
        load_corpus.cache_clear()
        start = time.perf_counter()
        load_corpus()
        cached = time.perf_counter() - start
    s, p = statistics.median(seq), statistics.median(first)
    print(f"{len(QUARTETS)} movements, medians of {args.rounds} rounds:")
    print(f"  one after the other:                  {s:6.1f} s")
    cores = f"({os.cpu_count()} cores)"
    print(f"  load_corpus, empty cache {cores}:  {p:6.1f} s   ({s / p:.2f}x faster)")
    print(f"  load_corpus, cache file read back:    {cached:6.2f} s")


if __name__ == "__main__":
    main()
