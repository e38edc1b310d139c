"""instrlab: synthesize labelled multi-instrument audio, train recognisers, track in MLflow."""

__version__ = "0.1.0"
