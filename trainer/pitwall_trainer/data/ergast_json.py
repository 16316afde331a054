"""Ergast/Jolpica JSON <-> Ergast CSV cells: the one place that knows how fields map and print.

The fetcher reads API objects with these mappings; the test server writes API objects from the
CSV tables with the inverse. Cells are text exactly as in the Ergast CSVs (`\\N` for NULL, some
string columns quoted, numbers as the API prints them), so re-fetched tables compare byte for
byte with the originals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pitwall_trainer.data.schema import NULL, TABLES

# The columns the original files wrap in double quotes (the result tables quote nothing).
QUOTED: dict[str, frozenset[str]] = {
    "circuits": frozenset({"circuitRef", "name", "location", "country", "url"}),
    "constructors": frozenset({"constructorRef", "name", "nationality", "url"}),
    "drivers": frozenset({"driverRef", "code", "forename", "surname", "dob", "nationality", "url"}),
    "status": frozenset({"status"}),
    "seasons": frozenset({"url"}),
    "races": frozenset(
        c.name for c in TABLES["races"].columns if c.name not in {"raceId", "year", "round", "circuitId"}
    ),
}

# Race weekend sessions: CSV column prefix -> the API's keys, first found wins. Jolpica renamed
# the sprint shootout (2023) and sprint qualifying (2024-) that Ergast listed as SecondPractice.
SESSIONS: dict[str, tuple[str, ...]] = {
    "fp1": ("FirstPractice",),
    "fp2": ("SecondPractice", "SprintShootout", "SprintQualifying"),
    "fp3": ("ThirdPractice",),
    "quali": ("Qualifying",),
    "sprint": ("Sprint",),
}

# Row lists inside a race object, per endpoint.
RACE_LISTS = {
    "results": "Results",
    "qualifying": "QualifyingResults",
    "sprint": "SprintResults",
    "pitstops": "PitStops",
}

# CSV column <- dotted path in the API object, for the cells that are copied as they are. Ids,
# refs resolved to ids, and derived cells (position, statusId, milliseconds) are the fetcher's.
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circuits": (
        ("circuitRef", "circuitId"),
        ("name", "circuitName"),
        ("location", "Location.locality"),
        ("country", "Location.country"),
        ("lat", "Location.lat"),
        ("lng", "Location.long"),
        ("alt", "Location.alt"),
        ("url", "url"),
    ),
    "constructors": (
        ("constructorRef", "constructorId"),
        ("name", "name"),
        ("nationality", "nationality"),
        ("url", "url"),
    ),
    "drivers": (
        ("driverRef", "driverId"),
        ("number", "permanentNumber"),
        ("code", "code"),
        ("forename", "givenName"),
        ("surname", "familyName"),
        ("dob", "dateOfBirth"),
        ("nationality", "nationality"),
        ("url", "url"),
    ),
    "seasons": (("year", "season"), ("url", "url")),
    "results": (
        ("number", "number"),
        ("grid", "grid"),
        ("positionText", "positionText"),
        ("positionOrder", "position"),
        ("points", "points"),
        ("laps", "laps"),
        ("time", "Time.time"),
        ("milliseconds", "Time.millis"),
        ("fastestLap", "FastestLap.lap"),
        ("rank", "FastestLap.rank"),
        ("fastestLapTime", "FastestLap.Time.time"),
        ("fastestLapSpeed", "FastestLap.AverageSpeed.speed"),
    ),
    "qualifying": (("number", "number"), ("position", "position"), ("q1", "Q1"), ("q2", "Q2"), ("q3", "Q3")),
    "pit_stops": (("stop", "stop"), ("lap", "lap"), ("duration", "duration")),
    "standings": (
        ("points", "points"),
        ("position", "position"),
        ("positionText", "positionText"),
        ("wins", "wins"),
    ),
}
FIELDS["sprint_results"] = FIELDS["results"]


def pick(obj: dict, path: str) -> str | None:
    """The cell at a dotted path ('FastestLap.Time.time'), None when any part is absent."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return cell(obj)


def cells(table: str, obj: dict) -> dict[str, str | None]:
    """The copied cells of one API object for `table` (see FIELDS)."""
    return {column: pick(obj, path) for column, path in FIELDS[table]}


_DURATION = re.compile(r"^(?:(\d+):)?(\d+)(?:\.(\d+))?$")


def cell(value: object) -> str | None:
    """An API value as CSV text; None and empty strings are NULL."""
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def format_row(table: str, row: dict[str, str | None]) -> str:
    """One CSV line (no newline) in the original files' formatting."""
    quoted = QUOTED.get(table, frozenset())
    out = []
    for column in TABLES[table].column_names:
        value = row.get(column)
        if value is None:
            out.append(NULL)
        elif column in quoted:
            out.append('"' + value.replace('"', '""') + '"')
        else:
            out.append(value)
    return ",".join(out)


def write_table(path: Path, table: str, rows: Iterable[dict[str, str | None]]) -> int:
    """Write header and rows with LF endings; return the row count."""
    lines = [",".join(TABLES[table].column_names)]
    lines.extend(format_row(table, row) for row in rows)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return len(lines) - 1


def duration_ms(duration: str | None) -> str | None:
    """Pit stop duration '26.898' or '40:55.302' -> milliseconds as text ('26898')."""
    match = _DURATION.match(duration or "")
    if not match:
        return None
    minutes, seconds, fraction = match.groups()
    millis = (int(minutes or 0) * 60 + int(seconds)) * 1000 + int((fraction or "0").ljust(3, "0")[:3])
    return str(millis)


def position_from_text(position_text: str | None) -> str | None:
    """The classified position: the CSV's `position` is the numeric positionText, else NULL."""
    return position_text if position_text and position_text.isdigit() else None


def clock(value: str | None) -> str | None:
    """API times carry a UTC 'Z' ('06:00:00Z'); the CSVs do not."""
    text = cell(value)
    return text[:-1] if text and text.endswith("Z") else text


def format_points(value: float) -> str:
    """Points the way the tables print them: 14, 12.5, 0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
