"""Where the data comes from: --data-dir, then $PITWALL_DATA_DIR, then the fetch cache."""

from __future__ import annotations

import os
from pathlib import Path

from pitwall_api.contract import CACHE_DIR_ENV, DATA_DIR_ENV

from pitwall_trainer.errors import DataError

DATA_ENV, CACHE_ENV = DATA_DIR_ENV, CACHE_DIR_ENV


def cache_root() -> Path:
    """The trainer's cache folder: $PITWALL_CACHE_DIR, else $XDG_CACHE_HOME/pitwall, else ~/.cache/pitwall."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pitwall"


def fetch_cache_dir() -> Path:
    """The folder `pitwall-train data fetch` fills when no --out is given."""
    return cache_root() / "f1-ergast"


HOW_TO_GET_DATA = (
    "no F1 data found. Give a folder of Ergast-schema CSVs with --data-dir DIR or "
    f"${DATA_ENV}, or download it once with `pitwall-train data fetch --seasons 2018-2024` "
    "(fills the cache at {cache})."
)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Pick the data folder by the documented order, or say exactly how to get data."""
    if data_dir:
        chosen, origin = Path(data_dir), "--data-dir"
    elif os.environ.get(DATA_ENV):
        chosen, origin = Path(os.environ[DATA_ENV]), f"${DATA_ENV}"
    else:
        cache = fetch_cache_dir()
        if (cache / "races.csv").is_file():
            return cache
        raise DataError(HOW_TO_GET_DATA.format(cache=cache))
    if not chosen.is_dir():
        raise DataError(f"{origin}: {chosen} is not a folder")
    return chosen.resolve()
