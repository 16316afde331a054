"""A local Ergast/Jolpica-format HTTP server that serves JSON pages generated from Ergast CSVs.

Why: the fetcher must be tested against real HTTP (pagination, 429 with Retry-After, errors)
without the internet. Pages follow Jolpica's JSON: `MRData` with limit (max 100), offset and
total counted in rows; results, qualifying, sprints and pit stops nested in their race; no
surrogate ids, only refs; circuits without altitude; the API's `position` is the finishing order.
"""

from __future__ import annotations

import csv
import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

NULL = r"\N"
PREFIX = "/ergast/f1"
RACE_TABLES = (
    "results",
    "qualifying",
    "sprint_results",
    "pit_stops",
    "driver_standings",
    "constructor_standings",
)


def read_csv(path: Path) -> list[dict[str, str | None]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: (None if v == NULL else v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None and v != {}}


def _obj(row: dict[str, str | None], **api_from_csv: str) -> dict[str, Any]:
    """An API object: each API field from a CSV column, NULL fields left out (as the API does)."""
    return _clean({field: row[column] for field, column in api_from_csv.items()})


def _num(value: str | None, missing: int = 10**6) -> int:
    return int(value) if value not in (None, "") else missing


def _zulu(value: str | None) -> str | None:
    return f"{value}Z" if value else None


class ErgastData:
    """The shared tables turned into API objects."""

    def __init__(self, data_dir: Path):
        lookups = ("circuits", "constructors", "drivers", "status", "seasons", "races")
        t = {name: read_csv(data_dir / f"{name}.csv") for name in (*lookups, *RACE_TABLES)}
        self.t = t
        self.drivers = {r["driverId"]: self.driver(r) for r in t["drivers"]}
        self.constructors = {r["constructorId"]: self.constructor(r) for r in t["constructors"]}
        self.circuits = {r["circuitId"]: self.circuit(r) for r in t["circuits"]}
        self.status = {r["statusId"]: r["status"] for r in t["status"]}
        self.races = {r["raceId"]: r for r in t["races"]}
        self.by_round = {(r["year"], r["round"]): r for r in t["races"]}
        self.rows: dict[str, dict[str, list[dict[str, str | None]]]] = {}
        for name in RACE_TABLES:
            grouped = defaultdict(list)
            for row in t[name]:
                grouped[row["raceId"]].append(row)
            self.rows[name] = grouped

    @staticmethod
    def driver(r: dict[str, str | None]) -> dict[str, Any]:
        return _obj(
            r, driverId="driverRef", permanentNumber="number", code="code", url="url", givenName="forename",
            familyName="surname", dateOfBirth="dob", nationality="nationality",
        )  # fmt: skip

    @staticmethod
    def constructor(r: dict[str, str | None]) -> dict[str, Any]:
        return _obj(r, constructorId="constructorRef", url="url", name="name", nationality="nationality")

    @staticmethod
    def circuit(r: dict[str, str | None]) -> dict[str, Any]:
        location = _clean(
            {"lat": r["lat"], "long": r["lng"], "locality": r["location"], "country": r["country"]}
        )
        return _clean(
            {"circuitId": r["circuitRef"], "url": r["url"], "circuitName": r["name"], "Location": location}
        )

    def race(self, r: dict[str, str | None], full: bool = False) -> dict[str, Any]:
        obj = {
            "season": r["year"],
            "round": r["round"],
            "url": r["url"],
            "raceName": r["name"],
            "Circuit": self.circuits[r["circuitId"]],
            "date": r["date"],
            "time": _zulu(r["time"]),
        }
        if full:
            sprint_weekend = r["sprint_date"] is not None
            fp2 = "SecondPractice"
            if sprint_weekend and r["year"] == "2023":
                fp2 = "SprintShootout"
            elif sprint_weekend and int(r["year"]) >= 2024:
                fp2 = "SprintQualifying"
            for prefix, key in (
                ("fp1", "FirstPractice"),
                ("fp2", fp2),
                ("fp3", "ThirdPractice"),
                ("quali", "Qualifying"),
                ("sprint", "Sprint"),
            ):
                if r[f"{prefix}_date"]:
                    obj[key] = _clean({"date": r[f"{prefix}_date"], "time": _zulu(r[f"{prefix}_time"])})
        return _clean(obj)

    def result(self, r: dict[str, str | None]) -> dict[str, Any]:
        fastest = _clean(
            {
                "rank": r.get("rank"),
                "lap": r["fastestLap"],
                "Time": _clean({"time": r["fastestLapTime"]}),
                "AverageSpeed": _clean({"units": "kph", "speed": r.get("fastestLapSpeed")})
                if r.get("fastestLapSpeed")
                else {},
            }
        )
        return _clean(
            {
                "number": r["number"],
                "position": r["positionOrder"],
                "positionText": r["positionText"],
                "points": r["points"],
                "Driver": self.drivers[r["driverId"]],
                "Constructor": self.constructors[r["constructorId"]],
                "grid": r["grid"],
                "laps": r["laps"],
                "status": self.status[r["statusId"]],
                "Time": _clean({"millis": r["milliseconds"], "time": r["time"]}),
                "FastestLap": fastest,
            }
        )

    def qualifying(self, r: dict[str, str | None]) -> dict[str, Any]:
        who = {"Driver": self.drivers[r["driverId"]], "Constructor": self.constructors[r["constructorId"]]}
        return {**_obj(r, number="number", position="position", Q1="q1", Q2="q2", Q3="q3"), **who}

    def pit_stop(self, r: dict[str, str | None]) -> dict[str, Any]:
        ref = self.drivers[r["driverId"]]["driverId"]
        return {"driverId": ref, **_obj(r, lap="lap", stop="stop", time="time", duration="duration")}

    def standing(self, r: dict[str, str | None]) -> dict[str, Any]:
        who = (
            {"Driver": self.drivers[r["driverId"]], "Constructors": []}
            if "driverId" in r
            else {"Constructor": self.constructors[r["constructorId"]]}
        )
        return _clean(
            {
                "position": r["position"],
                "positionText": r["positionText"],
                "points": r["points"],
                "wins": r["wins"],
                **who,
            }
        )

    def season_races(self, season: str) -> list[dict[str, str | None]]:
        return sorted((r for r in self.t["races"] if r["year"] == season), key=lambda r: int(r["round"]))

    # -- pages ---------------------------------------------------------------------------------

    def page(self, path: str, limit: int, offset: int) -> dict[str, Any] | None:
        """MRData for an API path (without prefix and .json), or None for an unknown path."""
        parts = [p.lower() for p in path.strip("/").split("/") if p]
        base = {
            "xmlns": "",
            "series": "f1",
            "url": f"http://127.0.0.1{PREFIX}/{path}.json",
            "limit": str(limit),
            "offset": str(offset),
        }
        lookups = {
            "seasons": (
                "SeasonTable",
                "Seasons",
                [
                    _clean({"season": r["year"], "url": r["url"]})
                    for r in sorted(self.t["seasons"], key=lambda r: r["year"])
                ],
            ),
            "circuits": (
                "CircuitTable",
                "Circuits",
                sorted(self.circuits.values(), key=lambda c: c["circuitId"]),
            ),
            "constructors": (
                "ConstructorTable",
                "Constructors",
                sorted(self.constructors.values(), key=lambda c: c["constructorId"]),
            ),
            "drivers": ("DriverTable", "Drivers", sorted(self.drivers.values(), key=lambda d: d["driverId"])),
            "status": (
                "StatusTable",
                "Status",
                [{"statusId": k, "count": "1", "status": v} for k, v in self.status.items()],
            ),
        }
        if len(parts) == 1 and parts[0] in lookups:
            table, key, items = lookups[parts[0]]
            return {**base, "total": str(len(items)), table: {key: items[offset : offset + limit]}}
        if len(parts) == 2 and parts[1] == "races":
            items = [self.race(r, full=True) for r in self.season_races(parts[0])]
            return {
                **base,
                "total": str(len(items)),
                "RaceTable": {"season": parts[0], "Races": items[offset : offset + limit]},
            }
        nested = {
            "results": ("results", "Results", self.result),
            "qualifying": ("qualifying", "QualifyingResults", self.qualifying),
            "sprint": ("sprint_results", "SprintResults", self.result),
            "pitstops": ("pit_stops", "PitStops", self.pit_stop),
        }
        if len(parts) in (2, 3) and parts[-1] in nested:
            table, key, convert = nested[parts[-1]]
            races = self.season_races(parts[0])
            if len(parts) == 3:
                races = [r for r in races if r["round"] == parts[1]]
            flat = []
            for race in races:
                rows = self.rows[table].get(race["raceId"], [])
                if table in ("results", "sprint_results"):
                    rows = sorted(rows, key=lambda r: int(r["positionOrder"]))
                elif table == "qualifying":
                    rows = sorted(rows, key=lambda r: _num(r["position"]))
                flat.extend((race, convert(r)) for r in rows)
            return {
                **base,
                "total": str(len(flat)),
                "RaceTable": {"season": parts[0], "Races": self._group(flat[offset : offset + limit], key)},
            }
        standings = {
            "driverstandings": ("driver_standings", "DriverStandings"),
            "constructorstandings": ("constructor_standings", "ConstructorStandings"),
        }
        if len(parts) == 3 and parts[2] in standings:
            table, key = standings[parts[2]]
            race = self.by_round.get((parts[0], parts[1]))
            rows = sorted(
                self.rows[table].get(race["raceId"], []) if race else [], key=lambda r: _num(r["position"])
            )
            items = [self.standing(r) for r in rows][offset : offset + limit]
            lists = [{"season": parts[0], "round": parts[1], key: items}] if items else []
            return {
                **base,
                "total": str(len(rows)),
                "StandingsTable": {"season": parts[0], "round": parts[1], "StandingsLists": lists},
            }
        return None

    def _group(self, flat: list[tuple[dict[str, Any], dict[str, Any]]], key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for race, item in flat:
            if not out or out[-1]["_id"] != race["raceId"]:
                out.append({"_id": race["raceId"], **self.race(race), key: []})
            out[-1][key].append(item)
        for obj in out:
            del obj["_id"]
        return out


class LocalServer:
    """An HTTP server on 127.0.0.1 in a thread, for `with`; subclasses answer GETs in `_handle`."""

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def send(
        request: BaseHTTPRequestHandler,
        code: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        request.send_response(code)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)


class ErgastServer(LocalServer):
    """Serve `ErgastData` in a thread; knobs for 429s and broken paths; logs requests."""

    def __init__(self, data: ErgastData):
        super().__init__()
        self.data = data
        self.requests: list[str] = []
        self.throttle = 0  # answer this many next requests with 429 and Retry-After
        self.retry_after = "1"
        self.broken: set[str] = set()  # paths (after the prefix) answered with 404

    @property
    def base_url(self) -> str:
        return self.root + PREFIX

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlparse(request.path)
        path = url.path.removeprefix(PREFIX).removesuffix(".json").strip("/")
        self.requests.append(path)
        query = parse_qs(url.query)
        if self.throttle > 0:
            self.throttle -= 1
            self._send(request, 429, {"detail": "rate limited"}, {"Retry-After": self.retry_after})
            return
        if path in self.broken:
            self._send(request, 404, {"detail": "not found"})
            return
        limit = min(int(query.get("limit", ["30"])[0]), 100)
        offset = int(query.get("offset", ["0"])[0])
        mrdata = self.data.page(path, limit, offset)
        if mrdata is None:
            self._send(request, 404, {"detail": "not found"})
        else:
            self._send(request, 200, {"MRData": mrdata})

    def _send(self, request: BaseHTTPRequestHandler, code: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.send(request, code, json.dumps(body).encode(), headers=headers)
