"""Read the Ergast-schema CSVs, validate them, and join one typed table of race entries.

Everything is read as text first so that a bad cell becomes a validation report naming file,
column and row (see `validate.py`) rather than a pandas stack trace.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from pitwall_trainer.data.paths import resolve_data_dir
from pitwall_trainer.data.schema import DATE, FLOAT, INT, NULL, TABLES
from pitwall_trainer.errors import DataError

log = logging.getLogger(__name__)

# A pit "stop" longer than this is a red-flag tyre change, not a strategy stop (data README).
RED_FLAG_STOP_MS = 60_000


def read_raw(path: Path) -> pd.DataFrame:
    """Read one CSV as text; `\\N` and empty cells become missing values.

    Blank lines are kept (as rows of missing values) so that row i is always CSV line i + 2, the
    line number the validator reports.
    """
    return pd.read_csv(path, dtype=str, na_values=[NULL, ""], keep_default_na=False, skip_blank_lines=False)


def read_raw_tables(data_dir: Path) -> dict[str, pd.DataFrame | None]:
    """Every known table as text, or None for a file that is absent or unreadable."""
    frames: dict[str, pd.DataFrame | None] = {}
    for name, table in TABLES.items():
        path = data_dir / table.file
        try:
            frames[name] = read_raw(path) if path.is_file() else None
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            frames[name] = None
    return frames


def to_typed(name: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Convert a validated text table to its schema types (nullable ints as Int64)."""
    out = raw.copy()
    for column in TABLES[name].columns:
        if column.name not in out:
            continue
        if column.kind == INT:
            out[column.name] = pd.to_numeric(out[column.name]).astype("Int64")
        elif column.kind == FLOAT:
            out[column.name] = pd.to_numeric(out[column.name]).astype("float64")
        elif column.kind == DATE:
            out[column.name] = pd.to_datetime(out[column.name], format="%Y-%m-%d")
    return out


def load_tables(data_dir: str | Path | None = None, *, validate: bool = True) -> dict[str, pd.DataFrame]:
    """Resolve, validate and type every table; raise DataError listing all problems."""
    folder = resolve_data_dir(data_dir)
    raw = read_raw_tables(folder)
    if validate:
        from pitwall_trainer.data.validate import validate_tables

        problems = validate_tables(folder, raw)
        if problems:
            raise DataError(f"the data in {folder} is not valid ({len(problems)} problems)", problems)
    return {name: to_typed(name, frame) for name, frame in raw.items() if frame is not None}


def data_fingerprint(data_dir: str | Path | None = None) -> str:
    """A short hash of the table files' bytes: identifies the data a model was trained on."""
    folder = resolve_data_dir(data_dir)
    digest = hashlib.sha256()
    for table in sorted(TABLES.values(), key=lambda t: t.name):
        path = folder / table.file
        if path.is_file():
            digest.update(table.file.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def laptime_ms(values: pd.Series) -> pd.Series:
    """'1:26.572' or '86.572' -> 86572.0 ms; anything else -> NaN."""
    text = values.astype("string")
    parts = text.str.extract(r"^(?:(\d+):)?(\d+(?:\.\d+)?)$")
    minutes = pd.to_numeric(parts[0], errors="coerce").fillna(0)
    seconds = pd.to_numeric(parts[1], errors="coerce")
    return ((minutes * 60 + seconds) * 1000).astype("float64")


def _first_stops(pit_stops: pd.DataFrame | None) -> pd.DataFrame:
    """First strategy stop lap and stop count per (raceId, driverId), red-flag stops excluded."""
    columns = ["raceId", "driverId", "first_stop_lap", "n_stops"]
    if pit_stops is None or pit_stops.empty:
        return pd.DataFrame(columns=columns)
    clean = pit_stops[pit_stops["milliseconds"].fillna(0) <= RED_FLAG_STOP_MS]
    grouped = clean.groupby(["raceId", "driverId"])["lap"]
    return grouped.agg(first_stop_lap="min", n_stops="count").reset_index()[columns]


def race_entries(tables: dict[str, pd.DataFrame], seasons: Iterable[int] | None = None) -> pd.DataFrame:
    """One row per driver per race, sorted by race date: what happened and what was known before.

    Columns ending in `_after` (standings) describe the state *after* the race; the feature
    pipeline shifts them so that a race only sees earlier races.
    """
    races = tables["races"][["raceId", "year", "round", "circuitId", "name", "date", "sprint_date"]].rename(
        columns={"name": "race_name"}
    )
    results = tables["results"].sort_values(["raceId", "positionOrder"])
    # Shared drives (1950-1978) list a driver twice in one race: keep the better classification.
    results = results.drop_duplicates(["raceId", "driverId"], keep="first")
    entries = results[
        ["raceId", "driverId", "constructorId", "grid", "position", "positionText", "positionOrder",
         "points", "laps", "statusId"]
    ].rename(columns={"positionOrder": "position_order"})
    entries = entries.merge(races, on="raceId", how="inner")

    status = tables["status"][["statusId", "status"]]
    entries = entries.merge(status, on="statusId", how="left")
    drivers = tables["drivers"][["driverId", "driverRef", "dob"]].rename(columns={"dob": "driver_dob"})
    entries = entries.merge(drivers, on="driverId", how="left")
    constructors = tables["constructors"][["constructorId", "constructorRef"]]
    entries = entries.merge(constructors, on="constructorId", how="left")

    quali = tables.get("qualifying")
    if quali is not None and not quali.empty:
        q = quali.drop_duplicates(["raceId", "driverId"])[["raceId", "driverId", "position", "q1", "q2", "q3"]].copy()
        for seg in ("q1", "q2", "q3"):
            q[f"{seg}_ms"] = laptime_ms(q[seg])
        q["best_quali_ms"] = q[["q1_ms", "q2_ms", "q3_ms"]].min(axis=1)
        q = q.rename(columns={"position": "quali_position"}).drop(columns=["q1", "q2", "q3"])
        entries = entries.merge(q, on=["raceId", "driverId"], how="left")
    else:
        for column in ("quali_position", "q1_ms", "q2_ms", "q3_ms", "best_quali_ms"):
            entries[column] = np.nan

    ds = tables["driver_standings"].drop_duplicates(["raceId", "driverId"])
    entries = entries.merge(
        ds[["raceId", "driverId", "points", "position", "wins"]].rename(
            columns={"points": "driver_points_after", "position": "driver_position_after",
                     "wins": "driver_wins_after"}
        ),
        on=["raceId", "driverId"],
        how="left",
    )
    cs = tables.get("constructor_standings")
    if cs is not None:
        cs = cs.drop_duplicates(["raceId", "constructorId"])
        entries = entries.merge(
            cs[["raceId", "constructorId", "points", "position"]].rename(
                columns={"points": "constructor_points_after", "position": "constructor_position_after"}
            ),
            on=["raceId", "constructorId"],
            how="left",
        )
    else:
        entries["constructor_points_after"] = np.nan
        entries["constructor_position_after"] = np.nan

    sprints = tables.get("sprint_results")
    if sprints is not None and not sprints.empty:
        sp = sprints.drop_duplicates(["raceId", "driverId"])[["raceId", "driverId", "positionOrder", "points", "grid"]]
        sp = sp.rename(columns={"positionOrder": "sprint_position", "points": "sprint_points", "grid": "sprint_grid"})
        entries = entries.merge(sp, on=["raceId", "driverId"], how="left")
    else:
        for column in ("sprint_position", "sprint_points", "sprint_grid"):
            entries[column] = np.nan

    entries = entries.merge(_first_stops(tables.get("pit_stops")), on=["raceId", "driverId"], how="left")

    # Typed, explicit columns for the quirks (data README).
    for column in ("position", "position_order", "laps", "quali_position", "driver_position_after",
                   "driver_wins_after", "constructor_position_after", "sprint_position", "sprint_grid",
                   "first_stop_lap", "n_stops"):
        entries[column] = pd.to_numeric(entries[column]).astype("float64")
    entries["grid"] = entries["grid"].astype("float64")  # missing grid stays NaN
    entries["pit_lane_start"] = entries["grid"].eq(0)
    entries["classified"] = entries["position"].notna()
    entries["won"] = entries["position_order"].eq(1)
    entries["podium"] = entries["position_order"].le(3)
    entries["finished"] = entries["status"].fillna("").str.match(r"^(Finished|\+\d+ Laps?)$")
    entries["has_sprint"] = entries["sprint_date"].notna()

    if seasons is not None:
        wanted = set(seasons)
        entries = entries[entries["year"].isin(wanted)]
    entries = entries.sort_values(["date", "raceId", "position_order"], kind="stable").reset_index(drop=True)
    return entries


def load_race_entries(
    data_dir: str | Path | None = None, seasons: Iterable[int] | None = None
) -> pd.DataFrame:
    """Validate the data folder and return its race entries (optionally only some seasons)."""
    return race_entries(load_tables(data_dir), seasons)
