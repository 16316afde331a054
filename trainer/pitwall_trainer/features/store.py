"""The feature matrix of a data folder, cached on disk per data hash and feature code version.

Training, backtests and tuning trials all start from the same matrix; computing it once per
(data, FEATURE_VERSION) and reusing it keeps retraining per race cheap. A cache entry is only
written from validated data, so a hit on the same bytes may skip validation.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pitwall_trainer import progress
from pitwall_trainer.data.loader import data_fingerprint, load_tables, race_entries
from pitwall_trainer.data.paths import cache_root, resolve_data_dir
from pitwall_trainer.features.pipeline import FEATURE_VERSION, compute_features

log = logging.getLogger(__name__)


@dataclass
class FeatureMatrix:
    frame: pd.DataFrame  # keys, outcomes and features, sorted by date
    data_hash: str  # fingerprint of the table files
    cache_hit: bool
    path: Path | None  # the cache file, when caching is on


def feature_cache_dir() -> Path:
    return cache_root() / "features"


def cache_key(data_hash: str, validated: bool) -> str:
    """Changes when the data bytes, the feature code version or the validation state change."""
    text = f"{data_hash}|{FEATURE_VERSION}|{'validated' if validated else 'unvalidated'}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load_feature_matrix(
    data_dir: str | Path | None = None, *, validate: bool = True, use_cache: bool = True
) -> FeatureMatrix:
    """Features for every race entry of the data folder; reuse the cached matrix when present."""
    progress.phase("Loading", message="loading and validating the data")
    folder = resolve_data_dir(data_dir)
    data_hash = data_fingerprint(folder)
    path = feature_cache_dir() / f"features-{cache_key(data_hash, validate)}.pkl" if use_cache else None
    if path is not None and path.is_file():
        try:
            frame = pd.read_pickle(path)
            log.info("feature cache hit: %s (data %s, features v%s)", path, data_hash, FEATURE_VERSION)
            return FeatureMatrix(frame, data_hash, True, path)
        except Exception as error:  # noqa: BLE001 - a broken cache file is rebuilt, not fatal
            log.warning("ignoring unreadable feature cache %s: %s", path, error)
    tables = load_tables(folder, validate=validate)
    progress.phase("Features", message="building pre-race features")
    frame = compute_features(race_entries(tables))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.to_pickle(tmp)
        os.replace(tmp, path)  # atomic: concurrent trainers never read half a file
        log.info("feature cache miss: computed and stored %s", path)
    return FeatureMatrix(frame, data_hash, False, path)
