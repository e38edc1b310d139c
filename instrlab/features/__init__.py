"""Feature extractors: audio clip -> fixed-shape array."""

from instrlab.features.base import FeatureExtractor, get_extractor
from instrlab.features.logmel import LogMel
from instrlab.features.seed_image import SeedImage

__all__ = ["FeatureExtractor", "LogMel", "SeedImage", "get_extractor"]
