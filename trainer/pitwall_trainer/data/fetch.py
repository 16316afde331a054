"""`pitwall-train data fetch`: download seasons from Jolpica into Ergast-schema CSVs.

Two sources, one builder. `source="api"` pages the API; `source="dump"` downloads Jolpica's CSV
dump once (see `dump.py`; free dumps are 14 days old) and answers the same API paths from it
(`jolpica_dump.py`); `source="auto"` tries the dump and pages the API if anything about the dump
fails (download, checksum, zip, schema, validation). Both go through `fetch_tables`, the ids,
the merge and the validated swap below, so both write the same tables.

The API is Ergast-compatible JSON (`MRData`, limit/offset pages of at most 100 rows). It has no
Ergast surrogate ids, so ids are assigned here: an id already given to the same natural key
(driverRef, (year, round), (raceId, driverId), ...) in the target folder, or in `ids_from`, is
reused; a new key gets max(id) + 1 in API order. Re-fetching is therefore stable, and fetching
with `ids_from` set to the Ergast tables reproduces their rows byte for byte.

The target folder is replaced as a whole: rows of seasons not fetched are kept from the old
folder, the new folder is written beside it, validated, and swapped in by renames, so a failure
leaves the old folder as it was.

What the API cannot give: circuit altitude (kept from earlier tables when known, else NULL);
`constructor_results` is derived from race and sprint points (matches the tables from 2018 on);
the CSV `position` is derived from `positionText` (wrong for two 2003 rows, see the data README).
"""

from __future__ import annotations

import email.utils
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import requests

from pitwall_trainer.data import ergast_json as ej
from pitwall_trainer.data.dump import fetch_dump, index_url_for
from pitwall_trainer.data.jolpica_dump import DumpClient
from pitwall_trainer.data.loader import read_raw, read_raw_tables
from pitwall_trainer.data.schema import TABLES
from pitwall_trainer.data.validate import validate_tables
from pitwall_trainer.errors import ConfigError, DataError
from pitwall_trainer.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.jolpi.ca/ergast/f1"
SOURCES = ("auto", "dump", "api")
PAGE_LIMIT = 100  # the API's maximum page size
FIRST_PIT_STOP_SEASON = 2011
FIRST_SPRINT_SEASON = 2021
FIRST_CONSTRUCTORS_SEASON = 1958  # the constructors' championship
ALL_CARS_SCORE_SEASON = 1979  # before it only a constructor's best-placed car scored

Row = dict[str, str | None]
Key = tuple[str, ...]


class FetchError(Exception):
    """The API could not be reached or answered nonsense; retrying later may help (exit code 1)."""


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass
class ApiClient:
    """GET MRData pages with timeouts, bounded retries, and HTTP 429 Retry-After honoured."""

    base_url: str = DEFAULT_BASE_URL
    timeout: float = 30.0
    retries: int = 5
    max_wait: float = 900.0  # refuse a longer Retry-After (Jolpica's hourly quota) rather than hang
    min_interval: float | None = None  # None: 0.25 s for Jolpica (4 requests a second), 0 elsewhere
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    requests_made: int = 0
    _last: float = 0.0

    def get(self, path: str, offset: int = 0, limit: int = PAGE_LIMIT) -> dict[str, Any]:
        url = f"{self.base_url.rstrip('/')}/{path}.json"
        problem = ""
        if self.min_interval is None:
            self.min_interval = 0.25 if self.base_url.rstrip("/") == DEFAULT_BASE_URL else 0.0
        for attempt in range(self.retries + 1):
            wait = self.min_interval - (time.monotonic() - self._last)
            if wait > 0:
                self.sleep(wait)
            self._last = time.monotonic()
            self.requests_made += 1
            try:
                response = self.session.get(
                    url, params={"limit": limit, "offset": offset}, timeout=self.timeout
                )
            except requests.RequestException as error:
                problem, delay = f"{type(error).__name__}: {error}", 2.0**attempt
            else:
                if response.status_code == 200:
                    return _mrdata(url, response)
                if response.status_code != 429 and response.status_code < 500:
                    raise FetchError(
                        f"{url}?offset={offset}: HTTP {response.status_code} {response.text[:200]}"
                    )
                problem = f"HTTP {response.status_code}"
                delay = _retry_after(response.headers.get("Retry-After"))
                if delay is None:
                    delay = 2.0**attempt
            if attempt == self.retries:
                break
            if delay > self.max_wait:
                raise FetchError(
                    f"{url}: {problem}, and the server asks to wait {delay:.0f}s; try again later"
                )
            log.info("%s: %s, retrying in %.1fs", url, problem, delay)
            self.sleep(delay)
        raise FetchError(f"{url}?offset={offset}: {problem} after {self.retries + 1} attempts")

    def collect(self, path: str, table: str, items: str) -> list[dict[str, Any]]:
        """Every item of `MRData[table][items]` over all pages."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            data = self.get(path, offset)
            try:
                out.extend(data.get(table, {}).get(items, []))
                total, limit = int(data["total"]), int(data.get("limit") or PAGE_LIMIT)
            except (KeyError, TypeError, ValueError) as error:
                raise FetchError(f"{path}: unexpected MRData page ({error!r})") from None
            offset += max(limit, 1)
            if offset >= total:
                return out

    def nested(self, path: str, table: str, items: str, inner: str) -> list[dict[str, Any]]:
        """Pages split a race (or standings list) in two: join the parts by (season, round)."""
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.collect(path, table, items):
            key = (str(item.get("season")), str(item.get("round")))
            if key in merged:
                merged[key][inner].extend(item.get(inner, []))
            else:
                merged[key] = {**item, inner: list(item.get(inner, []))}
        return list(merged.values())


def _mrdata(url: str, response: requests.Response) -> dict[str, Any]:
    try:
        return response.json()["MRData"]
    except (ValueError, KeyError, TypeError):
        raise FetchError(f"{url}: the answer is not Ergast JSON (no MRData)") from None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------------------------------------
# Surrogate ids

# How each table's rows are recognised across fetches: id column and natural-key columns.
NATURAL_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "circuits": ("circuitId", ("circuitRef",)),
    "constructors": ("constructorId", ("constructorRef",)),
    "drivers": ("driverId", ("driverRef",)),
    "races": ("raceId", ("year", "round")),
    "results": ("resultId", ("raceId", "driverId", "#")),
    "sprint_results": ("resultId", ("raceId", "driverId", "#")),
    "qualifying": ("qualifyId", ("raceId", "driverId", "#")),
    "driver_standings": ("driverStandingsId", ("raceId", "driverId")),
    "constructor_standings": ("constructorStandingsId", ("raceId", "constructorId")),
    "constructor_results": ("constructorResultsId", ("raceId", "constructorId")),
}


def _text_rows(frame: pd.DataFrame | None) -> list[Row]:
    if frame is None:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")


def _with_occurrence(rows: list[Row], columns: tuple[str, ...]) -> list[tuple[Key, Row]]:
    """Natural keys; '#' numbers repeats of the rest (a driver twice in one race: shared drives)."""
    seen: dict[Key, int] = defaultdict(int)
    out = []
    for row in rows:
        base = tuple(str(row.get(c)) for c in columns if c != "#")
        if "#" in columns:
            out.append(((*base, str(seen[base])), row))
            seen[base] += 1
        else:
            out.append((base, row))
    return out


class IdBook:
    """Natural key -> surrogate id per table, started from earlier tables, extended deterministically."""

    def __init__(self) -> None:
        self.ids: dict[str, dict[Key, int]] = defaultdict(dict)
        self.used: dict[str, set[int]] = defaultdict(set)
        self.rows: dict[str, dict[Key, Row]] = defaultdict(dict)  # earlier rows, to fill gaps (alt)

    def start_from(self, tables: dict[str, pd.DataFrame | None]) -> None:
        for table, (id_column, columns) in NATURAL_KEYS.items():
            rows = _text_rows(tables.get(table))
            if table in {"results", "sprint_results", "qualifying"}:
                order = "positionOrder" if table != "qualifying" else "position"
                rows = sorted(rows, key=lambda r: _int_or(r.get(order), 10**6))
            for key, row in _with_occurrence(rows, columns):
                try:
                    number = int(str(row.get(id_column)))
                except ValueError:
                    continue
                if key in self.ids[table] or number in self.used[table]:
                    continue  # the target's own ids win over a reference folder's
                self.ids[table][key] = number
                self.used[table].add(number)
                self.rows[table][key] = row

    def get(self, table: str, key: Key) -> str:
        if key not in self.ids[table]:
            number = max(self.used[table], default=0) + 1
            self.ids[table][key] = number
            self.used[table].add(number)
        return str(self.ids[table][key])


def _int_or(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# API objects -> rows


class Builder:
    """Turns API objects into CSV rows, resolving refs to ids through the IdBook."""

    def __init__(self, ids: IdBook) -> None:
        self.ids = ids
        self.status_ids: dict[str, str] = {}

    def _ref(self, table: str, ref: str) -> str:
        return self.ids.get(table, (ref,))

    def season(self, s: dict[str, Any]) -> Row:
        return ej.cells("seasons", s)

    def circuit(self, c: dict[str, Any]) -> Row:
        """Circuits: the API has no altitude, so an earlier table's value is kept."""
        row = ej.cells("circuits", c)
        earlier = self.ids.rows["circuits"].get((row["circuitRef"],), {})
        return {
            "circuitId": self._ref("circuits", c["circuitId"]),
            **row,
            "alt": row["alt"] or earlier.get("alt"),
        }

    def constructor(self, c: dict[str, Any]) -> Row:
        return {"constructorId": self._ref("constructors", c["constructorId"]), **ej.cells("constructors", c)}

    def driver(self, d: dict[str, Any]) -> Row:
        return {"driverId": self._ref("drivers", d["driverId"]), **ej.cells("drivers", d)}

    def status(self, s: dict[str, Any]) -> Row:
        self.status_ids[s["status"]] = str(s["statusId"])
        return {"statusId": str(s["statusId"]), "status": s["status"]}

    def race(self, r: dict[str, Any]) -> Row:
        season, rnd = str(r["season"]), str(r["round"])
        row: Row = {
            "raceId": self.ids.get("races", (season, rnd)),
            "year": season,
            "round": rnd,
            "circuitId": self._ref("circuits", r["Circuit"]["circuitId"]),
            "name": ej.cell(r.get("raceName")),
            "date": ej.cell(r.get("date")),
            "time": ej.clock(r.get("time")),
            "url": ej.cell(r.get("url")),
        }
        for prefix, keys in ej.SESSIONS.items():
            session = next((r[k] for k in keys if k in r), {})
            row[f"{prefix}_date"] = ej.cell(session.get("date"))
            row[f"{prefix}_time"] = ej.clock(session.get("time"))
        return row

    def race_id(self, r: dict[str, Any]) -> str:
        return self.ids.get("races", (str(r["season"]), str(r["round"])))

    def _status_id(self, text: str | None) -> str | None:
        if text is None:
            return None
        if text not in self.status_ids:
            raise FetchError(f"result status {text!r} is not in the API's status list")
        return self.status_ids[text]

    def _entries(self, table: str, race: dict[str, Any], items: list[dict[str, Any]]) -> list[Row]:
        """Rows of per-driver race entries (results, sprints, qualifying), in API order.

        A driver listed twice in one race (1950s shared drives) gets an occurrence number, so each
        of the two rows keeps its own id.
        """
        race_id = self.race_id(race)
        id_column = NATURAL_KEYS[table][0]
        seen: dict[str, int] = defaultdict(int)
        rows = []
        for item in items:
            driver = self._ref("drivers", item["Driver"]["driverId"])
            occurrence = seen[driver]
            seen[driver] += 1
            rows.append(
                {
                    id_column: self.ids.get(table, (race_id, driver, str(occurrence))),
                    "raceId": race_id,
                    "driverId": driver,
                    "constructorId": self._ref("constructors", item["Constructor"]["constructorId"]),
                    **ej.cells(table, item),
                }
            )
            if table != "qualifying":
                rows[-1]["position"] = ej.position_from_text(rows[-1]["positionText"])
                rows[-1]["statusId"] = self._status_id(ej.cell(item.get("status")))
        return rows

    def results(self, table: str, race: dict[str, Any], items: list[dict[str, Any]]) -> list[Row]:
        """Race or sprint results; the API's `position` is the full finishing order (positionOrder)."""
        return self._entries(table, race, items)

    def qualifying(self, race: dict[str, Any], items: list[dict[str, Any]]) -> list[Row]:
        return self._entries("qualifying", race, items)

    def pit_stops(self, race: dict[str, Any], items: list[dict[str, Any]]) -> list[Row]:
        race_id = self.race_id(race)
        return [
            {
                "raceId": race_id,
                "driverId": self._ref("drivers", p["driverId"]),
                **ej.cells("pit_stops", p),
                "time": ej.clock(p.get("time")),
                "milliseconds": ej.duration_ms(p.get("duration")),
            }
            for p in items
        ]

    def standings(self, table: str, race: dict[str, Any], items: list[dict[str, Any]]) -> list[Row]:
        race_id = self.race_id(race)
        id_column, (_, who) = NATURAL_KEYS[table]
        rows = []
        for item in items:
            if who == "driverId":
                ref = self._ref("drivers", item["Driver"]["driverId"])
            else:
                ref = self._ref("constructors", item["Constructor"]["constructorId"])
            key = (race_id, ref)
            rows.append(
                {
                    id_column: self.ids.get(table, key),
                    "raceId": race_id,
                    who: ref,
                    **ej.cells("standings", item),
                }
            )
        return rows

    def constructor_results(self, season: int, race_rows: list[Row], sprint_rows: list[Row]) -> list[Row]:
        """Per race and constructor: the points the constructor scored, as the Ergast table holds them.

        No constructors' championship before 1958 (no rows); until 1978 only the best-placed car
        scored for its constructor; later all cars, plus sprint points from 2021.
        """
        if season < FIRST_CONSTRUCTORS_SEASON:
            return []
        combine = max if season < ALL_CARS_SCORE_SEASON else (lambda a, b: a + b)
        points: dict[tuple[str, str], float] = {}
        for row in [*race_rows, *sprint_rows]:
            key = (str(row["raceId"]), str(row["constructorId"]))
            value = float(row["points"] or 0)
            points[key] = combine(points[key], value) if key in points else value
        return [
            {
                "constructorResultsId": self.ids.get("constructor_results", key),
                "raceId": key[0],
                "constructorId": key[1],
                "points": ej.format_points(value),
                "status": None,
            }
            for key, value in points.items()
        ]


# ---------------------------------------------------------------------------------------------
# The fetch


class Pages(Protocol):
    """What `fetch_tables` asks of a source: the API (`ApiClient`) or the dump (`DumpClient`)."""

    requests_made: int

    def collect(self, path: str, table: str, items: str) -> list[dict[str, Any]]: ...

    def nested(self, path: str, table: str, items: str, inner: str) -> list[dict[str, Any]]: ...


LOOKUPS = [  # table, API path, MRData table, item list
    ("seasons", "seasons", "SeasonTable", "Seasons"),
    ("circuits", "circuits", "CircuitTable", "Circuits"),
    ("constructors", "constructors", "ConstructorTable", "Constructors"),
    ("drivers", "drivers", "DriverTable", "Drivers"),
    ("status", "status", "StatusTable", "Status"),
]


def fetch_tables(
    seasons: Iterable[int], client: Pages, ids: IdBook, show_progress: bool | None = None
) -> dict[str, list[Row]]:
    """Download the seasons and the lookup tables; rows per table, ids resolved."""
    seasons = sorted(set(seasons))
    build = Builder(ids)
    tables: dict[str, list[Row]] = defaultdict(list)
    calendars: dict[int, list[dict[str, Any]]] = {}
    with Progress(len(LOOKUPS) + len(seasons), "lookups and calendars", show_progress) as progress:
        for table, path, mr_table, items in LOOKUPS:
            convert = {
                "seasons": build.season,
                "circuits": build.circuit,
                "constructors": build.constructor,
                "drivers": build.driver,
                "status": build.status,
            }[table]
            tables[table].extend(convert(item) for item in client.collect(path, mr_table, items))
            progress.advance(message=table)
        for season in seasons:
            calendars[season] = client.collect(f"{season}/races", "RaceTable", "Races")
            tables["races"].extend(build.race(r) for r in calendars[season])
            progress.advance(message=str(season))

    steps = sum(3 + 3 * len(calendars[s]) for s in seasons)
    with Progress(steps, "race data", show_progress) as progress:
        for season in seasons:
            race_rows: list[Row] = []
            sprint_rows: list[Row] = []
            for race in client.nested(f"{season}/results", "RaceTable", "Races", "Results"):
                race_rows.extend(build.results("results", race, race["Results"]))
            progress.advance(message=f"{season} results")
            for race in client.nested(f"{season}/qualifying", "RaceTable", "Races", "QualifyingResults"):
                tables["qualifying"].extend(build.qualifying(race, race["QualifyingResults"]))
            progress.advance(message=f"{season} qualifying")
            if season >= FIRST_SPRINT_SEASON:
                for race in client.nested(f"{season}/sprint", "RaceTable", "Races", "SprintResults"):
                    sprint_rows.extend(build.results("sprint_results", race, race["SprintResults"]))
            progress.advance(message=f"{season} sprints")
            tables["results"].extend(race_rows)
            tables["sprint_results"].extend(sprint_rows)
            tables["constructor_results"].extend(build.constructor_results(season, race_rows, sprint_rows))
            for race in calendars[season]:
                rnd = f"{season}/{race['round']}"
                if season >= FIRST_PIT_STOP_SEASON:
                    for part in client.nested(f"{rnd}/pitstops", "RaceTable", "Races", "PitStops"):
                        tables["pit_stops"].extend(build.pit_stops(part, part["PitStops"]))
                progress.advance(message=f"{rnd} pit stops")
                for table, path, inner in (
                    ("driver_standings", "driverstandings", "DriverStandings"),
                    ("constructor_standings", "constructorstandings", "ConstructorStandings"),
                ):
                    for lst in client.nested(f"{rnd}/{path}", "StandingsTable", "StandingsLists", inner):
                        tables[table].extend(build.standings(table, lst, lst[inner]))
                    progress.advance(message=f"{rnd} {path}")
    return dict(tables)


def _merge(
    fetched: dict[str, list[Row]], old: dict[str, pd.DataFrame | None], seasons: set[int]
) -> dict[str, list[Row]]:
    """Keep the old folder's rows of other seasons and of lookup rows the API no longer lists."""
    old_races = _text_rows(old.get("races"))
    replaced = {str(r["raceId"]) for r in old_races if _int_or(r.get("year"), 0) in seasons}
    replaced |= {str(r["raceId"]) for r in fetched.get("races", [])}
    merged: dict[str, list[Row]] = {}
    for name, table in TABLES.items():
        new_rows = fetched.get(name, [])
        old_rows = _text_rows(old.get(name))
        if "raceId" in table.column_names:
            kept = [r for r in old_rows if str(r.get("raceId")) not in replaced]
        else:
            first = table.key[0]
            fresh = {str(r[first]) for r in new_rows}
            kept = [r for r in old_rows if str(r.get(first)) not in fresh]
        rows = kept + new_rows
        if name != "pit_stops":
            rows.sort(key=lambda r, k=table.key[0]: _int_or(r.get(k), 0))
        else:
            # By time of day within a race (the API's order), so that both sources write the same bytes.
            rows.sort(key=lambda r: (_int_or(r.get("raceId"), 0), r.get("time") or "", _int_or(r.get("lap"), 0),
                                     _int_or(r.get("stop"), 0), _int_or(r.get("driverId"), 0)))  # fmt: skip
        merged[name] = rows
    return merged


def _check_target(target: Path) -> None:
    """Refuse to replace anything but a folder of Ergast tables: `--out ~` must not wipe a home."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ConfigError(f"--out: {target} exists and is not a folder")
    known = {t.file for t in TABLES.values()}
    strangers = sorted(p.name for p in target.iterdir() if p.name not in known)
    if strangers:
        raise ConfigError(
            f"--out: {target} holds files that are not Ergast tables ({', '.join(strangers[:5])}); "
            "the fetch replaces the whole folder, so give an empty or a data folder"
        )


def _replace_folder(target: Path, staged: Path) -> None:
    """Swap `staged` in for `target` by renames; on failure the old folder is put back."""
    backup = target.with_name(f".{target.name}.old-{os.getpid()}")
    had_old = target.exists()
    if had_old:
        target.rename(backup)
    try:
        staged.rename(target)
    except OSError:
        if had_old:
            backup.rename(target)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)


def _write_validated(target: Path, tables: dict[str, list[Row]]) -> dict[str, int]:
    """Write the tables beside `target`, validate them, swap them in; row counts per table."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    try:
        counts = {
            name: ej.write_table(staged / TABLES[name].file, name, rows) for name, rows in tables.items()
        }
        problems = validate_tables(staged, {n: read_raw(staged / t.file) for n, t in TABLES.items()})
        if problems:
            raise DataError(f"the fetched data is not valid; {target} was left unchanged", problems)
        _replace_folder(target, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return counts


def _id_book(*earlier: dict[str, pd.DataFrame | None]) -> IdBook:
    ids = IdBook()
    for tables in earlier:
        ids.start_from(tables)
    return ids


def _from_dump(
    seasons: set[int],
    target: Path,
    old: dict[str, pd.DataFrame | None],
    reference: dict[str, pd.DataFrame | None],
    index_url: str,
    show_progress: bool | None,
) -> dict[str, Any]:
    """The dump path: download and verify, answer the API paths from it, write as the API path does."""
    with fetch_dump(index_url, show_progress=show_progress) as (info, archive):
        pages = DumpClient(archive, seasons, source=info.download_url, show_progress=show_progress)
    fetched = fetch_tables(seasons, pages, _id_book(old, reference), show_progress)
    counts = _write_validated(target, _merge(fetched, old, seasons))
    log.info("fetched seasons %s into %s from the Jolpica dump uploaded %s", sorted(seasons), target, info.uploaded_at)
    return {
        "out": str(target),
        "seasons": sorted(seasons),
        "rows": counts,
        "requests": 2,  # the index and the zip
        "source": "dump",
        "dump": {"uploaded_at": info.uploaded_at, "sha256": info.file_hash, "bytes": info.file_size,
                 "url": info.download_url},  # fmt: skip
    }


def fetch_seasons(
    seasons: Iterable[int],
    out: str | os.PathLike[str],
    base_url: str = DEFAULT_BASE_URL,
    ids_from: str | os.PathLike[str] | None = None,
    client: ApiClient | None = None,
    show_progress: bool | None = None,
    source: str = "api",
    dump_url: str | None = None,
) -> dict[str, Any]:
    """Fetch `seasons` into `out` (validated, replaced atomically); a summary for the CLI.

    `source` is "api", "dump" or "auto" (the dump, else the API). The default stays "api" for
    callers that need the newest races (the free dump is 14 days old); the CLI defaults to
    "auto". `dump_url` is the dump index, by default the one on `base_url`'s server.
    """
    if source not in SOURCES:
        raise ConfigError(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    target = Path(out).resolve()
    _check_target(target)
    season_set = set(seasons)
    old = read_raw_tables(target) if target.is_dir() else {}
    reference = read_raw_tables(Path(ids_from)) if ids_from else {}
    failure: Exception | None = None
    if source in ("dump", "auto"):
        try:
            return _from_dump(season_set, target, old, reference, dump_url or index_url_for(base_url), show_progress)
        except Exception as error:  # noqa: BLE001 - "auto": whatever failed in the dump, the API may work
            if source == "dump":
                raise
            failure = error
            log.warning("the Jolpica dump failed, paging the API instead: %s", error)

    client = client or ApiClient(base_url=base_url)
    fetched = fetch_tables(season_set, client, _id_book(old, reference), show_progress)
    counts = _write_validated(target, _merge(fetched, old, season_set))
    log.info("fetched seasons %s into %s with %d requests", sorted(season_set), target, client.requests_made)
    summary: dict[str, Any] = {
        "out": str(target),
        "seasons": sorted(season_set),
        "rows": counts,
        "requests": client.requests_made,
        "source": "api",
    }
    if failure is not None:
        summary["fallback"] = f"{type(failure).__name__}: {failure}"[:2000]
    return summary
