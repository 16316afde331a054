"""Shared fixtures. Real data comes from $PITWALL_DATA_DIR (CI sets it) or the fetch cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pitwall_trainer.data.paths import fetch_cache_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as the trainer's entry point and image set it

pytest_plugins = ["tests.plugins.mlflow_server", "tests.plugins.cluster"]


def _real_data_dir() -> Path | None:
    env = os.environ.get("PITWALL_DATA_DIR")
    if env and (Path(env) / "races.csv").is_file():
        return Path(env)
    if (fetch_cache_dir() / "races.csv").is_file():
        return fetch_cache_dir()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Ergast tables; tests that need them skip with the reason when absent."""
    found = _real_data_dir()
    if found is None:
        pytest.skip("no real F1 data: set PITWALL_DATA_DIR or run `pitwall-train data fetch`")
    return found
