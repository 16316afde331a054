"""Pre-race feature pipeline (no leakage), cached per data hash and feature code version."""

from pitwall_trainer.features.pipeline import (
    FEATURE_VERSION,
    FEATURES,
    HISTORY_FEATURES,
    WEEKEND_FEATURES,
    compute_features,
)
from pitwall_trainer.features.store import FeatureMatrix, load_feature_matrix

__all__ = [
    "FEATURES",
    "FEATURE_VERSION",
    "HISTORY_FEATURES",
    "WEEKEND_FEATURES",
    "FeatureMatrix",
    "compute_features",
    "load_feature_matrix",
]
