"""Building a dataset: clips rendered in parallel (:mod:`instrlab.dataset.render`), resumable.

Layout of a finished dataset directory::

    config.json     the DatasetConfig and the full identity (soundfont checksum, ...)
    features.npy    float16 (N, *feature_shape), memory-mapped when read
    labels.npy      uint8 (N, n_instruments)
    manifest.jsonl  one line per sample: instruments, notes, seed, stem levels
    stats.json      occurrences per instrument, instruments-per-sample histogram
    examples/       WAV and MIDI of the first --keep-audio samples
    COMPLETE        written last

A build goes into ``<name>.partial/`` and is renamed when complete and checked, so no
directory that looks finished is ever half-written; the lock ``<name>.lock`` beside it
keeps a second process from building the same directory at once. Work is done in chunks;
each chunk's rows are flushed before its record file is written, and a rerun skips chunks
that have one (the states a kill can leave: :mod:`instrlab.dataset.partial`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.dataset.config import (
    DatasetConfig,
    identity_digest,
    safe_component,
)
from instrlab.dataset.integrity import inspect_dataset
from instrlab.dataset.lock import claim
from instrlab.dataset.partial import (
    chunk_path,
    discard,
    finish_partial,
    note,
    open_partial,
    write_json,
)
from instrlab.dataset.render import SampleRenderer, SampleResult
from instrlab.errors import InstrlabError
from instrlab.paths import cache_dir
from instrlab.scores import score_to_midi

CHUNK = 32
MIN_PARALLEL = 256  # samples below which worker processes cost more than they save

_worker: dict[str, SampleRenderer] = {}


def _init_worker(cfg: DatasetConfig) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker["renderer"] = SampleRenderer(cfg)


def _render_chunk(job: tuple[int, int, int, int]) -> tuple[int, list[SampleResult]]:
    chunk, start, stop, keep_audio = job
    renderer = _worker["renderer"]
    return chunk, [renderer.render(i, keep_audio=i < keep_audio) for i in range(start, stop)]


def dataset_name(cfg: DatasetConfig, digest: str) -> str:
    return f"{cfg.instruments}-{cfg.features}-n{cfg.n_samples}-{digest}"


def _save_example(directory: Path, result: SampleResult, renderer: SampleRenderer) -> None:
    import soundfile as sf

    directory.mkdir(exist_ok=True)
    stem = directory / f"{result.index:06d}"
    sf.write(stem.with_suffix(".wav"), result.audio, renderer.cfg.sample_rate, subtype="PCM_16")
    score_to_midi(renderer.score(result.index), renderer.iset).save(stem.with_suffix(".mid"))


def _run_jobs(cfg: DatasetConfig, jobs: list[tuple[int, int, int, int]], workers: int,
              renderer: SampleRenderer) -> Iterator[tuple[int, list[SampleResult]]]:
    # starting a worker process costs seconds (imports, soundfont load): small jobs stay
    # in-process, which gives the same bytes
    if workers <= 1 or len(jobs) <= 1 or sum(j[2] - j[1] for j in jobs) < MIN_PARALLEL:
        _worker["renderer"] = renderer
        for job in jobs:
            yield _render_chunk(job)
        return
    ctx = mp.get_context("spawn")  # fork deadlocks with FluidSynth/OpenBLAS state
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
        yield from pool.imap_unordered(_render_chunk, jobs)


def resolve_workers(workers: int | None) -> int:
    if workers is None or workers == 0:
        return os.cpu_count() or 1
    if workers < 0:
        raise InstrlabError(f"workers must be >= 0 (0 = all cores), got {workers}")
    return workers


REFUSALS = {
    "other": "{path} holds another dataset ({detail}, not {digest}); choose another --out or "
             "delete it",
    "foreign": "{path} exists and is not a finished instrlab dataset ({detail}); choose another "
               "--out or delete it",
    "damaged": "{path} is a damaged dataset ({detail}); delete it and run instrlab generate "
               "again, or choose another --out",
}


def _reusable(final: Path, digest: str, cached: bool, locked: bool) -> bool:
    """Whether ``final`` holds the whole dataset of ``digest``. Anything else there is an
    error for a user's ``--out``; in the cache it is discarded once ``locked``."""
    found, detail = inspect_dataset(final, digest)
    if found == "finished":
        return True
    if found == "absent":
        return False
    if not cached:
        raise InstrlabError(REFUSALS[found].format(path=final, detail=detail, digest=digest))
    if locked:
        discard(final, f"discarding the damaged cached dataset {final} ({detail}); "
                       "building it again")
    return False


def generate_dataset(
    cfg: DatasetConfig,
    out: Path | None = None,
    workers: int | None = None,
    keep_audio: int = 0,
    progress: bool = True,
) -> Path:
    """Build (or reuse, or resume) the dataset of ``cfg``; returns its directory.

    One process at a time builds a directory: it holds the lock ``NAME.lock`` beside it for
    the whole build; another process asking for the same directory notes on stderr that it
    waits, then reuses what the first one finished. What is on disk decides the rest:

    - a finished dataset is reused if it passes the checks of
      :func:`~instrlab.dataset.integrity.inspect_dataset` (COMPLETE names the digest of
      config.json, arrays whole, as many manifest lines and counted samples as clips);
    - in the cache (``out`` None: the directory is named by its content, so it is only a
      cache) anything else under that name is deleted, with a note, and built again;
    - a user's ``out`` holding another dataset, a damaged one, or anything but an empty
      directory is an InstrlabError naming it, and nothing in it is touched;
    - ``NAME.partial/`` resumes from its finished chunks when whole, else it is discarded,
      with a note, and built again (:func:`~instrlab.dataset.partial.open_partial`).
    """
    workers = resolve_workers(workers)
    if keep_audio < 0:
        raise InstrlabError(f"keep_audio must be >= 0, got {keep_audio}")
    renderer = SampleRenderer(cfg)
    identity = renderer.identity()
    digest = identity_digest(identity)
    cached = out is None
    final = Path(out) if out else cache_dir() / "datasets" / safe_component(
        dataset_name(cfg, digest))
    if _reusable(final, digest, cached, locked=False):  # a finished dataset is only read
        return final
    renderer.check()  # before any file: a corrupt soundfont or missing preset writes nothing
    try:  # the one place a bad --out (a file, /proc, no permission) meets the file system
        final.parent.mkdir(parents=True, exist_ok=True)
        with claim(final, on_wait=lambda lock: note(
                f"waiting for another process to finish building {final} (it holds {lock})")):
            if not _reusable(final, digest, cached, locked=True):  # else built meanwhile
                meta = {"digest": digest, "name": final.name, "config": cfg.to_dict(),
                        "identity": identity, "shape": list(renderer.extractor.shape),
                        "dtype": "float16", "instrument_names": renderer.iset.names,
                        "instrument_labels": [i.display_name
                                              for i in renderer.iset.instruments]}
                _build(renderer, final, meta, workers, keep_audio, progress)
    except OSError as exc:
        where = exc.filename or final
        raise InstrlabError(f"cannot write the dataset at {where} ({exc.strerror or exc}); "
                            "choose another --out or fix its permissions") from exc
    return final


def _build(renderer: SampleRenderer, final: Path, meta: dict[str, Any], workers: int,
           keep_audio: int, progress: bool) -> None:
    """Build into ``NAME.partial/`` (resumed where possible), then rename it to ``final``."""
    cfg = renderer.cfg
    n, shape = cfg.n_samples, renderer.extractor.shape
    final_abs = Path(os.path.abspath(final))
    partial = final_abs.with_name(final_abs.name + ".partial")
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    done = open_partial(partial, meta, chunks)
    if done is not None:
        jobs = [(c, s, e, keep_audio) for c, (s, e) in enumerate(chunks) if c not in done]
        # Rows are written with pwrite, not through the memory map: written pages of a map
        # stay in this process's RSS (about 880 MB for 8000 logmel clips).
        feats_offset = np.load(partial / "features.npy", mmap_mode="r").offset
        row_bytes = int(np.prod(shape)) * 2
        labels = np.load(partial / "labels.npy", mmap_mode="r+")

        from instrlab.console import progress_bar

        with progress_bar(progress) as bar, open(partial / "features.npy", "r+b") as feats_file:
            task = bar.add_task(f"generate {final.name}", total=n,
                                completed=n - sum(j[2] - j[1] for j in jobs))
            for chunk, results in _run_jobs(cfg, jobs, workers, renderer):
                for r in results:
                    row = np.ascontiguousarray(r.features, dtype=np.float16)
                    if row.shape != tuple(shape):
                        raise InstrlabError(
                            f"feature extractor {cfg.features!r} returned shape {row.shape}, "
                            f"not its declared shape {tuple(shape)}"
                        )
                    os.pwrite(feats_file.fileno(), row.tobytes(),
                              feats_offset + r.index * row_bytes)
                    labels[r.index] = r.labels
                    if r.audio is not None:
                        _save_example(partial / "examples", r, renderer)
                os.fdatasync(feats_file.fileno())
                labels.flush()
                write_json(chunk_path(partial, chunk), [r.record for r in results])
                bar.advance(task, len(results))
        del labels
        finish_partial(partial, meta, chunks)
    shutil.rmtree(partial / "chunks", ignore_errors=True)
    if final_abs.exists():
        final_abs.rmdir()  # an empty directory: anything else was refused or discarded
    partial.rename(final_abs)
