"""Synthesized datasets: configuration, building, statistics and reading."""

from instrlab.dataset.build import generate_dataset
from instrlab.dataset.config import DatasetConfig, cache_dir
from instrlab.dataset.store import FeatureDataset, SynthDataset, open_dataset, split_indices

__all__ = [
    "DatasetConfig",
    "FeatureDataset",
    "SynthDataset",
    "cache_dir",
    "generate_dataset",
    "open_dataset",
    "split_indices",
]
