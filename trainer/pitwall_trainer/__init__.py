"""PitWall trainer: loads Ergast-schema F1 data, trains, evaluates, tracks in MLflow."""

__version__ = "0.1.0"
