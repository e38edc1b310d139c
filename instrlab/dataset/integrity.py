"""Checks of what a dataset directory holds on disk: whole arrays, manifest and statistics.

Every check returns the first problem as a short phrase ("labels.npy is missing") or
None; callers decide whether a problem is an error, a rebuild or a resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from instrlab.errors import first_line

COMPLETE = "COMPLETE"

Found = Literal["absent", "finished", "other", "foreign", "damaged"]


def array_problem(path: Path, dtype: np.dtype[Any] | type, shape: tuple[int, ...]) -> str | None:
    """Why ``path`` is not a whole C-order ``.npy`` of ``dtype`` and ``shape`` (None: it is)."""
    name, dtype = path.name, np.dtype(dtype)
    try:
        with open(path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                found_shape, fortran, found_dtype = read(fh)
            except (ValueError, EOFError, SyntaxError) as exc:
                return f"{name} has an unreadable header ({first_line(exc, 80)})"
            offset, size = fh.tell(), os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name} is not readable ({exc.strerror})"
    if tuple(found_shape) != tuple(shape) or found_dtype != dtype or fortran:
        return f"{name} holds {found_dtype} {tuple(found_shape)}, not {dtype} {tuple(shape)}"
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        return f"{name} has {size} bytes, not {expected}"
    return None


def read_meta(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a dataset directory; ValueError naming what is wrong."""
    try:
        meta = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ValueError("config.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("config.json is not readable JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("digest"), str):
        raise ValueError("config.json names no digest")
    return meta


def array_specs(meta: dict[str, Any]) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
    """The dtype and shape ``features.npy`` and ``labels.npy`` must have by ``meta``."""
    try:
        n = int(meta["config"]["n_samples"])
        return {"features.npy": (np.dtype(meta.get("dtype", "float16")), (n, *meta["shape"])),
                "labels.npy": (np.dtype(np.uint8), (n, len(meta["instrument_names"])))}
    except (KeyError, TypeError, ValueError):
        raise ValueError("config.json lacks the dataset's shape") from None


def arrays_problem(path: Path, meta: dict[str, Any]) -> str | None:
    """Why ``features.npy`` or ``labels.npy`` in ``path`` is not whole (None: both are)."""
    try:
        specs = array_specs(meta)
    except ValueError as exc:
        return str(exc)
    for name, (dtype, shape) in specs.items():
        problem = array_problem(path / name, dtype, shape)
        if problem:
            return problem
    return None


def contents_problem(path: Path, meta: dict[str, Any]) -> str | None:
    """Why the arrays, manifest and statistics in ``path`` are not the whole dataset of
    ``meta`` (None: they are): every row count equals ``n_samples``, array sizes exact."""
    problem = arrays_problem(path, meta)
    if problem:
        return problem
    n = int(meta["config"]["n_samples"])
    try:
        manifest = (path / "manifest.jsonl").read_bytes()
    except FileNotFoundError:
        return "manifest.jsonl is missing"
    except OSError as exc:
        return f"manifest.jsonl is not readable ({exc.strerror})"
    lines = manifest.count(b"\n")
    if lines != n or not manifest.endswith(b"\n"):
        return f"manifest.jsonl has {lines} whole lines, not {n}"
    try:
        stats = json.loads((path / "stats.json").read_text())
    except FileNotFoundError:
        return "stats.json is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "stats.json is not readable JSON"
    if not isinstance(stats, dict) or stats.get("n_samples") != n:
        return f"stats.json does not count {n} samples"
    return None


def finished_problem(path: Path, meta: dict[str, Any]) -> str | None:
    """Why ``path``, marked COMPLETE, is not the whole dataset of ``meta`` (None: it is)."""
    try:
        marker = (path / COMPLETE).read_text().strip()
    except FileNotFoundError:
        return f"{COMPLETE} is missing"
    except (OSError, UnicodeDecodeError):
        marker = ""
    if marker != meta["digest"]:
        return f"{COMPLETE} does not name the digest of config.json"
    return contents_problem(path, meta)


def inspect_dataset(path: Path, digest: str) -> tuple[Found, str]:
    """What ``path`` holds for a build of ``digest``, and the detail of anything wrong.

    ``absent``: nothing (or an empty directory); ``finished``: the whole dataset;
    ``other``: a whole-looking dataset of another digest; ``foreign``: something that is
    not a finished dataset (no COMPLETE marker); ``damaged``: marked COMPLETE, not whole.
    """
    if not path.exists():
        return "absent", ""
    if not path.is_dir():
        return "foreign", "it is not a directory"
    if not any(path.iterdir()):
        return "absent", ""
    if not (path / COMPLETE).exists():
        return "foreign", f"it has no {COMPLETE} marker"
    try:
        meta = read_meta(path)
    except ValueError as exc:
        return "damaged", str(exc)
    if meta["digest"] != digest:
        return "other", f"config.json names digest {meta['digest']}"
    problem = finished_problem(path, meta)
    return ("damaged", problem) if problem else ("finished", "")
