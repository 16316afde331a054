"""Check a folder of Ergast-schema CSVs and report every problem at once (issue 2, item 3).

Each problem names the file, the column and the row, where `row` is the line number in the CSV
(the header is line 1), so that a user can open the file at that line. A check that fails on many
rows reports the first `CAP` of them and then "... and N more": a wrong file must not print
26,000 lines. Only quirks the real tables have are tolerated (data README): shared drives
repeat (raceId, driverId) in 1950-1978 results, qualifying starts in 1994, optional tables.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pitwall_trainer.data.schema import DATE, FLOAT, INT, TABLES, TIME, Table

CAP = 20

_PATTERNS = {
    INT: (r"-?\d+", "an integer"),
    FLOAT: (r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", "a number"),
    DATE: (r"\d{4}-\d{2}-\d{2}", "a date (YYYY-MM-DD)"),
    TIME: (r"\d{2}:\d{2}:\d{2}", "a time (HH:MM:SS)"),
}

# Tables every season since 1950 has rows in: a header-only file means lost data.
NEED_ROWS = frozenset(
    {"circuits", "constructors", "drivers", "status", "races", "results", "driver_standings"}
)
FIRST_SEASON = 1950
# Practice and qualifying sessions happen at most a few days before the race (3 in the data).
MAX_SESSION_DAYS_BEFORE = 7


class Report:
    """Collects problems grouped by check, so each group can be capped on output."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], list[str]] = {}

    def add(self, group: tuple[str, ...], message: str) -> None:
        self._groups.setdefault(group, []).append(message)

    def rows(self, group: tuple[str, ...], messages: Iterable[str]) -> None:
        for message in messages:
            self.add(group, message)

    def problems(self) -> list[str]:
        out: list[str] = []
        for messages in self._groups.values():
            out.extend(messages[:CAP])
            if len(messages) > CAP:
                places = {m.split(", row")[0] for m in messages}
                place = places.pop() if len(places) == 1 else messages[0].split(",")[0]
                out.append(f"{place}: ... and {len(messages) - CAP} more like this")
        return out


def line(index: int) -> int:
    """The CSV line number of a data frame row (header is line 1, first row line 2)."""
    return int(index) + 2


def _where(table: Table, column: str, index: int) -> str:
    return f"{table.file}, column {column}, row {line(index)}"


def _check_file(data_dir: Path, table: Table, frame: pd.DataFrame | None, report: Report) -> bool:
    """Presence, readability, header and a complete last line; True when the rows can be checked."""
    path = data_dir / table.file
    group = (table.name, "file")
    if frame is None:
        if not path.is_file():
            if table.required:
                report.add(group, f"{table.file}, column -, row -: required file is missing from {data_dir}")
            return False
        report.rows(group, (f"{table.file}, column -, row {row}: {reason}" for row, reason in _unreadable_reasons(path)))
        return False
    if frame.empty and table.name in NEED_ROWS:
        report.add(group, f"{table.file}, column -, row 2: the file has a header but no rows")
    missing = [c for c in table.column_names if c not in frame.columns]
    for column in missing:
        report.add(group, f"{table.file}, column {column}, row 1: required column is missing from the header")
    tail = _tail(path)
    if tail and not tail.endswith(b"\n"):
        report.add(
            group,
            f"{table.file}, column -, row {line(len(frame) - 1) if len(frame) else 1}: "
            "the file does not end with a newline (truncated?)",
        )
    return not missing or len(missing) < len(table.columns)


def _tail(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 1))
        return handle.read()


def _unreadable_reasons(path: Path) -> list[tuple[int, str]]:
    """(line, why) for each line that keeps pandas from parsing the file: every ragged line."""
    if path.stat().st_size == 0:
        return [(1, "the file is empty (no header, no rows)")]
    found: list[tuple[int, str]] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            width = len(next(reader))
            for cells in reader:
                if cells and len(cells) != width:
                    found.append((reader.line_num, f"{len(cells)} fields where the header has {width}"))
    except csv.Error as error:
        found.append((reader.line_num, f"the file cannot be read as CSV: {error}"))
    except UnicodeDecodeError as error:
        found.append((1, f"the file is not UTF-8 text: {error}"))
    return found or [(1, "the file cannot be read as CSV")]


def _check_cells(table: Table, frame: pd.DataFrame, report: Report) -> None:
    """Missing values in non-nullable columns and cells that do not match the column's kind."""
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        nulls = values.isna()
        if not column.nullable:
            report.rows(
                (table.name, "null", column.name),
                (
                    f"{_where(table, column.name, i)}: missing value (\\N or empty) where one is required"
                    for i in values.index[nulls]
                ),
            )
        pattern, what = _PATTERNS.get(column.kind, (None, ""))
        if pattern is None:
            continue
        present = values[~nulls].astype(str)
        bad = ~present.str.fullmatch(pattern)
        if column.kind == DATE:
            parsed = pd.to_datetime(present.where(~bad), format="%Y-%m-%d", errors="coerce")
            bad |= parsed.isna()
        report.rows(
            (table.name, "type", column.name),
            (f"{_where(table, column.name, i)}: {v!r} is not {what}" for i, v in present[bad].items()),
        )


def _as_key(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Key columns normalised so that '7' and '07' compare equal where the column is numeric."""
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        numeric = pd.to_numeric(frame[name], errors="coerce")
        out[name] = numeric.where(numeric.notna(), frame[name])
    return out


def _check_key(table: Table, frame: pd.DataFrame, report: Report) -> None:
    if any(c not in frame.columns for c in table.key):
        return
    keys = _as_key(frame, table.key)
    dup = keys.duplicated(keep=False)
    if not dup.any():
        return
    first: dict[tuple, int] = {}
    for index, values in keys[dup].iterrows():
        key = tuple(values)
        shown = ", ".join(f"{c}={frame.at[index, c]}" for c in table.key)
        if key in first:
            report.add(
                (table.name, "key"),
                f"{_where(table, '/'.join(table.key), index)}: duplicate key {shown} "
                f"(first at row {line(first[key])})",
            )
        else:
            first[key] = index


def _check_references(
    table: Table, frame: pd.DataFrame, frames: dict[str, pd.DataFrame], report: Report
) -> None:
    for column, (target, target_column) in table.references.items():
        other = frames.get(target)
        if column not in frame.columns or other is None or target_column not in other.columns:
            continue
        known = set(pd.to_numeric(other[target_column], errors="coerce").dropna())
        values = pd.to_numeric(frame[column], errors="coerce")
        orphan = values.notna() & ~values.isin(known)
        report.rows(
            (table.name, "ref", column),
            (
                f"{_where(table, column, i)}: {frame.at[i, column]} is not a {target_column} in {target}.csv"
                for i in frame.index[orphan]
            ),
        )


def _check_winners(frames: dict[str, pd.DataFrame], report: Report) -> None:
    """Every race with results has exactly one winning car (positionOrder == 1).

    Shared drives (1950s) list the two drivers of the winning car both as winners: they count once,
    being the same constructor and car number.
    """
    results = frames.get("results")
    if results is None or not {"raceId", "positionOrder"} <= set(results.columns):
        return
    table = TABLES["results"]
    order = pd.to_numeric(results["positionOrder"], errors="coerce")
    race = pd.to_numeric(results["raceId"], errors="coerce")
    car = [c for c in ("constructorId", "number") if c in results.columns]
    won = results[order.eq(1)].assign(_race=race)
    cars = won.drop_duplicates(["_race", *car]).groupby("_race").size()
    cars = cars.reindex(race.dropna().unique(), fill_value=0)
    for race_id, count in cars[cars != 1].items():
        rows = results.index[race == race_id]
        index = won.index[won["_race"] == race_id][1] if count > 1 else rows[0]
        report.add(
            ("results", "winner"),
            f"{_where(table, 'positionOrder', index)}: race {int(race_id)} has {int(count)} winners "
            "(positionOrder 1), expected exactly one",
        )


def _dates(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame[column], format="%Y-%m-%d", errors="coerce")


def _check_dates(frames: dict[str, pd.DataFrame], report: Report, today: dt.date) -> None:
    """Race dates in their season and not far in the future; sessions just before the race; birthdays."""
    races = frames.get("races")
    table = TABLES["races"]
    latest = pd.Timestamp(today) + pd.DateOffset(years=2)
    if races is not None and {"date", "year"} <= set(races.columns):
        date = _dates(races, "date")
        year = pd.to_numeric(races["year"], errors="coerce")
        off = date.notna() & year.notna() & (date.dt.year != year)
        report.rows(
            ("races", "date", "year"),
            (
                f"{_where(table, 'date', i)}: {races.at[i, 'date']} is not in season {races.at[i, 'year']}"
                for i in races.index[off]
            ),
        )
        wild = date.notna() & ((date.dt.year < FIRST_SEASON) | (date > latest))
        report.rows(
            ("races", "date", "range"),
            (
                f"{_where(table, 'date', i)}: {races.at[i, 'date']} is outside {FIRST_SEASON} to {latest.date()}"
                for i in races.index[wild]
            ),
        )
        for session in ("fp1_date", "fp2_date", "fp3_date", "quali_date", "sprint_date"):
            if session not in races.columns:
                continue
            gap = (date - _dates(races, session)).dt.days
            odd = gap.notna() & ((gap < 0) | (gap > MAX_SESSION_DAYS_BEFORE))
            report.rows(
                ("races", "date", session),
                (
                    f"{_where(table, session, i)}: {races.at[i, session]} is not within "
                    f"{MAX_SESSION_DAYS_BEFORE} days before the race on {races.at[i, 'date']}"
                    for i in races.index[odd]
                ),
            )
    drivers = frames.get("drivers")
    if drivers is not None and "dob" in drivers.columns:
        dob = _dates(drivers, "dob")
        youngest = pd.Timestamp(today) - pd.DateOffset(years=14)
        odd = dob.notna() & ((dob.dt.year < 1880) | (dob > youngest))
        report.rows(
            ("drivers", "dob"),
            (
                f"{_where(TABLES['drivers'], 'dob', i)}: birth date {drivers.at[i, 'dob']} is implausible"
                for i in drivers.index[odd]
            ),
        )


def validate_tables(
    data_dir: Path, raw: dict[str, pd.DataFrame | None], today: dt.date | None = None
) -> list[str]:
    """Every problem in the tables read as text by `loader.read_raw_tables`; empty when valid."""
    data_dir = Path(data_dir)
    report = Report()
    usable: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        frame = raw.get(name)
        if _check_file(data_dir, table, frame, report) and frame is not None:
            usable[name] = frame
            _check_cells(table, frame, report)
            _check_key(table, frame, report)
    for name, frame in usable.items():
        _check_references(TABLES[name], frame, usable, report)
    _check_winners(usable, report)
    _check_dates(usable, report, today or dt.date.today())
    return report.problems()
