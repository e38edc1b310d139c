"""Reading finished datasets: memory-mapped arrays, splits and a torch Dataset."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from instrlab.dataset.config import DatasetConfig
from instrlab.dataset.integrity import COMPLETE, finished_problem, read_meta
from instrlab.errors import InstrlabError

SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def split_indices(n: int, seed: int, fractions: dict[str, float] | None = None
                  ) -> dict[str, np.ndarray]:
    """Deterministic disjoint splits of ``range(n)`` (default train 70 / val 10 / test 20).

    Fixed by the dataset seed alone, so every run on a dataset sees the same test split.
    """
    fractions = fractions or SPLIT_FRACTIONS
    if abs(sum(fractions.values()) - 1.0) > 1e-9 or min(fractions.values()) < 0:
        raise InstrlabError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5B117])).permutation(n)
    out: dict[str, np.ndarray] = {}
    start = 0
    names = list(fractions)
    for i, name in enumerate(names):
        stop = n if i == len(names) - 1 else start + int(round(fractions[name] * n))
        out[name] = np.sort(order[start:stop])
        start = stop
    return out


@dataclass
class SynthDataset:
    """A finished dataset directory, opened read-only."""

    path: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def digest(self) -> str:
        return str(self.meta["digest"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def config(self) -> DatasetConfig:
        return DatasetConfig.from_dict(self.meta["config"])

    @property
    def instrument_names(self) -> list[str]:
        return list(self.meta["instrument_names"])

    @property
    def instrument_labels(self) -> list[str]:
        return list(self.meta.get("instrument_labels") or self.instrument_names)

    @cached_property
    def features(self) -> np.ndarray:
        """(N, *shape) float16, memory-mapped: nothing is read until it is used."""
        return np.load(self.path / "features.npy", mmap_mode="r")

    @cached_property
    def labels(self) -> np.ndarray:
        return np.load(self.path / "labels.npy")

    @cached_property
    def stats(self) -> dict[str, Any]:
        return json.loads((self.path / "stats.json").read_text())

    def manifest(self) -> list[dict[str, Any]]:
        with open(self.path / "manifest.jsonl") as fh:
            return [json.loads(line) for line in fh]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def split(self) -> dict[str, np.ndarray]:
        return split_indices(len(self), int(self.meta["config"]["seed"]))

    def torch_dataset(self, indices: np.ndarray | None = None) -> FeatureDataset:
        return FeatureDataset(self.path, indices)


def open_dataset(path: str | Path) -> SynthDataset:
    """Open a finished dataset; unfinished, foreign or damaged directories are clear errors.

    Checked before anything is read: config.json, the COMPLETE marker naming its digest,
    whole arrays (header, shape, size) and as many manifest lines and counted samples as
    ``n_samples``.
    """
    path = Path(path)
    if not path.is_dir():
        raise InstrlabError(f"dataset {path} does not exist; build it with instrlab generate")
    if not (path / COMPLETE).exists():
        raise InstrlabError(
            f"dataset {path} is incomplete (an interrupted build?); run instrlab generate "
            "again with the same options to resume it"
        )
    try:
        meta = read_meta(path)
        problem = finished_problem(path, meta)
    except ValueError as exc:
        problem = str(exc)
    if problem:
        raise InstrlabError(
            f"dataset {path} is corrupt ({problem}); delete it and run instrlab generate again"
        )
    return SynthDataset(path, meta)


class FeatureDataset:
    """A ``torch.utils.data.Dataset`` over a dataset's memory-mapped features.

    Items are (float32 feature tensor, float32 label vector). ``__getitems__`` lets a
    DataLoader fetch a whole batch with one sorted read from the memory map.
    """

    def __init__(self, path: Path, indices: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self._labels = np.load(self.path / "labels.npy")
        self.indices = (np.arange(len(self._labels)) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        self._features: np.ndarray | None = None

    def _feats(self) -> np.ndarray:
        if self._features is None:  # opened lazily so each DataLoader worker maps its own
            self._features = np.load(self.path / "features.npy", mmap_mode="r")
        return self._features

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch

        j = int(self.indices[i])
        x = torch.from_numpy(np.asarray(self._feats()[j], dtype=np.float32))
        return x, torch.from_numpy(self._labels[j].astype(np.float32))

    def __getitems__(self, items: list[int]) -> list[tuple[Any, Any]]:
        import torch

        rows = self.indices[np.asarray(items, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        block = np.empty((len(rows), *self._feats().shape[1:]), np.float32)
        block[order] = self._feats()[rows[order]]
        xs = torch.from_numpy(block)
        ys = torch.from_numpy(self._labels[rows].astype(np.float32))
        return list(zip(xs, ys))
