"""A build in progress, ``NAME.partial/``: opened fresh, resumed, discarded or finished.

Write order, so that every state a kill can leave is recognised on the next run:

1. ``features.npy`` and ``labels.npy`` at full size, then ``config.json``: a partial
   without config.json, or whose arrays are not whole, is discarded and started again;
2. per chunk: its rows (synced), then ``chunks/NNNNN.json`` (written to ``.tmp`` and
   renamed): a chunk counts as done only when its record file holds its records;
3. ``manifest.jsonl`` and ``stats.json``, checked against ``n_samples``, then
   ``COMPLETE``, then ``chunks/`` is removed and the directory renamed: a partial marked
   COMPLETE that passes the checks is only renamed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.dataset.integrity import (
    COMPLETE,
    array_specs,
    arrays_problem,
    contents_problem,
    finished_problem,
    read_meta,
)
from instrlab.dataset.stats import compute_stats
from instrlab.errors import InstrlabError

Chunks = list[tuple[int, int]]


def note(message: str) -> None:
    """One line on stderr about what a build decided on its own (wait, resume, discard)."""
    print(f"instrlab: {message}", file=sys.stderr, flush=True)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def chunk_path(partial: Path, chunk: int) -> Path:
    return partial / "chunks" / f"{chunk:05d}.json"


def partial_problem(partial: Path, meta: dict[str, Any]) -> str | None:
    """Why ``partial`` cannot be resumed into the dataset of ``meta`` (None: it can)."""
    try:
        old = read_meta(partial)
    except ValueError as exc:
        return str(exc)
    if old["digest"] != meta["digest"]:
        return f"it was for another configuration, digest {old['digest']}"
    return arrays_problem(partial, meta)


def _holds_records(path: Path, start: int, stop: int) -> bool:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(records, list) and len(records) == stop - start
            and all(isinstance(r, dict) and r.get("index") == start + i
                    for i, r in enumerate(records)))


def _finished_chunks(partial: Path, chunks: Chunks) -> set[int]:
    """The chunks whose record files hold their records; every other file there goes."""
    for tmp in partial.glob("*.tmp"):
        tmp.unlink()
    folder = partial / "chunks"
    folder.mkdir(exist_ok=True)
    done: set[int] = set()
    for path in folder.iterdir():
        c = int(path.stem) if path.suffix == ".json" and path.stem.isdigit() else -1
        if 0 <= c < len(chunks) and path == chunk_path(partial, c) \
                and _holds_records(path, *chunks[c]):
            done.add(c)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return done


def discard(path: Path, message: str) -> None:
    """Delete ``path`` (a build or a cached dataset) after a note; COMPLETE goes first, so
    a deletion cut short never leaves something that looks finished."""
    note(message)
    if path.is_dir():
        (path / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(path)
    else:
        path.unlink()


def open_partial(partial: Path, meta: dict[str, Any], chunks: Chunks) -> set[int] | None:
    """Make ``partial`` ready to build into; returns the chunks already done there, or None
    when it is already whole and marked COMPLETE (only the rename is left).

    An existing partial resumes when its config.json names ``meta``'s digest and both
    arrays are whole (header, shape and size); ``*.tmp`` files are dropped and a chunk whose
    record file does not hold its records is done again. Anything else is discarded with a
    note on stderr and built from the start.
    """
    n = int(meta["config"]["n_samples"])
    if partial.exists():
        problem = partial_problem(partial, meta)
        if problem is None and (partial / COMPLETE).exists():
            problem = finished_problem(partial, meta)
            if problem is None:
                for tmp in partial.glob("*.tmp"):
                    tmp.unlink()
                note(f"finishing the partial build {partial}: it is whole, only not renamed")
                return None
        if problem is None:
            done = _finished_chunks(partial, chunks)
            count = sum(chunks[c][1] - chunks[c][0] for c in done)
            note(f"resuming the partial build {partial}: {count} of {n} samples done")
            return done
        discard(partial, f"discarding the partial build {partial} ({problem}); starting again")
    (partial / "chunks").mkdir(parents=True)
    for name, (dtype, shape) in array_specs(meta).items():
        np.lib.format.open_memmap(partial / name, mode="w+", dtype=dtype, shape=shape)
    write_json(partial / "config.json", meta)
    return set()


def finish_partial(partial: Path, meta: dict[str, Any], chunks: Chunks) -> None:
    """Write the manifest and statistics from the chunk records, check the whole against
    ``n_samples``, mark it COMPLETE and drop the chunk records."""
    records: list[dict[str, Any]] = []
    for c in range(len(chunks)):
        records.extend(json.loads(chunk_path(partial, c).read_text()))
    tmp = partial / "manifest.jsonl.tmp"
    with open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    tmp.replace(partial / "manifest.jsonl")
    labels = np.load(partial / "labels.npy", mmap_mode="r")
    write_json(partial / "stats.json", compute_stats(np.asarray(labels), meta["instrument_names"]))
    del labels
    problem = contents_problem(partial, meta)
    if problem:
        shutil.rmtree(partial)
        raise InstrlabError(
            f"the build in {partial} came out inconsistent ({problem}) and was discarded; "
            "run instrlab generate again"
        )
    (partial / COMPLETE).write_text(meta["digest"] + "\n")
    shutil.rmtree(partial / "chunks")
