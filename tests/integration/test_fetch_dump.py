"""`data fetch` from Jolpica's CSV dump, served by a local HTTP server, against the API path.

The dump is built here from the shared Ergast tables, in Jolpica's schema as the repository
jolpica/jolpica-f1 defines it: the tables and columns of `jolpica/formula_one/models/models.dbml`
(plus migration 0014's new columns), written as `scripts/generate_csv_dump.py` writes them
(`formula_one_<model>.csv`, flat in a zip with fixed timestamps, `id` first then alphabetical,
PostgreSQL COPY cells), and filled the way `jolpica/formula_one/import_from_ergast.py` moved the
Ergast tables into that schema (sessions per era, one round entry per result, quali times as
fastest laps of Q1/Q2/Q3 entries, pit stops on laps, standings per scoring session). Jolpica's
ids deliberately differ from Ergast's, so a conversion that leaned on ids would show.

The claim under test: converting that dump gives the tables the API path gives from the same
data (the local Ergast-format server of test_fetch.py): same files, columns and rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from pitwall_trainer.cli import main
from pitwall_trainer.data.dump import DumpError
from pitwall_trainer.data.fetch import fetch_seasons
from pitwall_trainer.data.schema import TABLES
from pitwall_trainer.errors import DataError

from tests.ergast_server import ErgastData, ErgastServer, LocalServer

pytestmark = pytest.mark.integration

SEASONS = [2021, 2022, 2023, 2024]  # sprint weekends of all three formats, sprint shootout and qualifying
NULL = r"\N"

# ---------------------------------------------------------------------------------------------
# Ergast tables -> a dump in Jolpica's schema

# Jolpica's tables and columns (models.dbml at migration 0011, plus 0014's session and entry columns).
JOLPICA_COLUMNS = {
    "baseteam": "id api_id name",
    "championshipadjustment": "id season_id driver_id team_id api_id adjustment points",
    "championshipsystem": "id api_id reference name eligibility driver_season_split driver_best_results "
    "team_season_split team_best_results team_points_per_session",
    "circuit": "id api_id reference name locality country country_code latitude longitude altitude wikipedia",
    "driver": "id api_id reference forename surname abbreviation nationality country_code "
    "permanent_car_number date_of_birth wikipedia",
    "driverchampionship": "id session_id driver_id year round_number session_number position points win_count "
    "highest_finish is_eligible adjustment_type season_id round_id",
    "lap": "id session_entry_id api_id number position time average_speed is_entry_fastest_lap is_deleted",
    "penalty": "id earned_id served_id api_id license_points position time is_time_served_in_pit",
    "pitstop": "id session_entry_id lap_id api_id number duration local_timestamp",
    "pointsystem": "id api_id reference name driver_position_points driver_fastest_lap team_position_points "
    "team_fastest_lap partial shared_drive is_double_points",
    "round": "id season_id circuit_id api_id number name date race_number wikipedia is_cancelled",
    "roundentry": "id round_id team_driver_id api_id car_number",
    "season": "id championship_system_id api_id year wikipedia",
    "session": "id round_id number point_system_id api_id type timestamp has_time_data timezone scheduled_laps "
    "is_cancelled completed_distance completed_laps",
    "sessionentry": "id session_id round_entry_id api_id position is_classified status detail points "
    "is_eligible_for_points grid time fastest_lap_rank laps_completed driver_of_the_day_percentage "
    "driver_of_the_day_winner",
    "team": "id base_team_id api_id reference name nationality country_code wikipedia primary_color",
    "teamchampionship": "id session_id team_id year round_number session_number position points win_count "
    "highest_finish is_eligible adjustment_type season_id round_id",
    "teamdriver": "id team_id driver_id season_id api_id role",
}
ACCIDENTS = {"Accident", "Collision", "Spun off", "Collision damage"}


def dump_columns(model: str) -> list[str]:
    """The generator's column order: `id` first, then alphabetical."""
    rest = sorted(c for c in JOLPICA_COLUMNS[model].split() if c != "id")
    return ["id", *rest]


def pg_cell(value: Any) -> str:
    """A value as PostgreSQL COPY CSV prints it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.timedelta):  # interval: 01:34:50.616, fraction without trailing zeros
        total = int(value.total_seconds())
        text = f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
        micros = value.microseconds
        return text + (f".{micros:06d}".rstrip("0") if micros else "")
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S+00")
    return str(value)


def ms(text: str | None) -> dt.timedelta | None:
    """Ergast milliseconds or a lap time (`1:27.452`) as a duration."""
    if text is None:
        return None
    if ":" in text or "." in text:
        minutes, _, seconds = text.rpartition(":")
        return dt.timedelta(minutes=int(minutes or 0), seconds=float(seconds))
    return dt.timedelta(milliseconds=int(text))


def read_ergast(data_dir: Path, name: str) -> list[dict[str, str | None]]:
    with (data_dir / TABLES[name].file).open(newline="", encoding="utf-8") as handle:
        return [{k: (None if v == NULL else v) for k, v in row.items()} for row in csv.DictReader(handle)]


class JolpicaDump:
    """The shared Ergast tables moved into Jolpica's tables, and written as Jolpica's zip."""

    def __init__(self, data_dir: Path):
        self.e = {name: read_ergast(data_dir, name) for name in TABLES}
        self.t: dict[str, list[dict[str, Any]]] = {model: [] for model in JOLPICA_COLUMNS}
        self._build()

    def add(self, model: str, **cells: Any) -> dict[str, Any]:
        row = {"id": len(self.t[model]) + 1, **cells}
        if "api_id" in JOLPICA_COLUMNS[model].split():
            row["api_id"] = f"{model}_{row['id']:05d}"
        unknown = set(row) - set(JOLPICA_COLUMNS[model].split())
        assert not unknown, f"{model}: {unknown} are not Jolpica columns"
        self.t[model].append(row)
        return row

    def _build(self) -> None:
        e = self.e
        # Lookups, numbered in ref order (not Ergast's ids); a Jolpica-only driver without a ref.
        circuits = {c["circuitId"]: self.add(
            "circuit", reference=c["circuitRef"], name=c["name"], locality=c["location"], country=c["country"],
            latitude=float(c["lat"]), longitude=float(c["lng"]), altitude=float(c["alt"]) if c["alt"] else None,
            wikipedia=c["url"]) for c in sorted(e["circuits"], key=lambda c: c["circuitRef"])}  # fmt: skip
        teams = {c["constructorId"]: self.add(
            "team", reference=c["constructorRef"], name=c["name"], nationality=c["nationality"], wikipedia=c["url"])
            for c in sorted(e["constructors"], key=lambda c: c["constructorRef"])}  # fmt: skip
        drivers = {d["driverId"]: self.add(
            "driver", reference=d["driverRef"], forename=d["forename"], surname=d["surname"], abbreviation=d["code"],
            nationality=d["nationality"], permanent_car_number=d["number"], date_of_birth=d["dob"],
            wikipedia=d["url"]) for d in sorted(e["drivers"], key=lambda d: d["driverRef"])}  # fmt: skip
        self.add("driver", reference=None, forename="Test", surname="Driver", nationality="Nowhere")
        seasons = {s["year"]: self.add("season", year=int(s["year"]), wikipedia=s["url"])
                   for s in sorted(e["seasons"], key=lambda s: s["year"])}  # fmt: skip
        self.add("pointsystem", reference="none", name="No points", driver_position_points=0,
                 team_position_points=0, is_double_points=False)  # fmt: skip

        races = sorted(e["races"], key=lambda r: int(r["raceId"]))
        self.rounds, self.race_session, self.sprint_session, self.quali_sessions = {}, {}, {}, defaultdict(list)
        for race in races:
            self.rounds[race["raceId"]] = rnd = self.add(
                "round", season_id=seasons[race["year"]]["id"], circuit_id=circuits[race["circuitId"]]["id"],
                number=int(race["round"]), name=race["name"], date=race["date"], race_number=len(self.rounds) + 1,
                wikipedia=race["url"], is_cancelled=False)  # fmt: skip
            self._sessions(race, rnd)
        # A cancelled round, as Jolpica keeps them (2023 Emilia Romagna); the tables have none.
        self.add("round", season_id=seasons["2023"]["id"], circuit_id=circuits["21"]["id"], number=None,
                 name="Emilia Romagna Grand Prix", date="2023-05-21", is_cancelled=True)  # fmt: skip

        status = {s["statusId"]: s["status"] for s in e["status"]}
        year = {r["raceId"]: r["year"] for r in races}
        quali = {(q["raceId"], q["driverId"]): q for q in e["qualifying"]}
        sprints = {(s["raceId"], s["driverId"]): s for s in e["sprint_results"]}
        stops = defaultdict(list)
        for p in e["pit_stops"]:
            stops[(p["raceId"], p["driverId"])].append(p)
        team_drivers: dict[tuple, dict] = {}
        done: set[tuple] = set()
        for res in sorted(e["results"], key=lambda r: (int(r["raceId"]), int(r["positionOrder"]))):
            race_id, key = res["raceId"], (res["raceId"], res["driverId"])
            td_key = (year[race_id], res["constructorId"], res["driverId"])
            if td_key not in team_drivers:
                team_drivers[td_key] = self.add(
                    "teamdriver", team_id=teams[res["constructorId"]]["id"], driver_id=drivers[res["driverId"]]["id"],
                    season_id=seasons[year[race_id]]["id"], role=0)  # fmt: skip
            entry = self.add("roundentry", round_id=self.rounds[race_id]["id"],
                             team_driver_id=team_drivers[td_key]["id"], car_number=res["number"])  # fmt: skip
            text = status[res["statusId"]]
            race_entry = self._entry(self.race_session[race_id], entry, res, text, rank=res["rank"])
            laps = {}
            if res["fastestLap"] or res["fastestLapTime"]:
                laps[res["fastestLap"]] = self._lap(race_entry, res["fastestLap"], fastest=res)
            for p in stops.get(key, []) if key not in done else []:
                lap = laps.get(p["lap"]) or self._lap(race_entry, p["lap"])
                laps[p["lap"]] = lap
                self.add("pitstop", session_entry_id=race_entry["id"], lap_id=lap["id"], number=int(p["stop"]),
                         duration=ms(p["milliseconds"]), local_timestamp=p["time"])  # fmt: skip
            if key in quali and key not in done:
                self._qualifying(quali[key], entry, res, text)
            if key in sprints and key not in done:
                s = sprints[key]
                sprint_entry = self._entry(self.sprint_session[race_id], entry, s, status[s["statusId"]], rank=s["rank"])
                if s["fastestLap"] or s["fastestLapTime"]:
                    self._lap(sprint_entry, s["fastestLap"], fastest=s)
            done.add(key)
        for kind, who, refs in (("driver", "driverId", drivers), ("team", "constructorId", teams)):
            table = "driver_standings" if kind == "driver" else "constructor_standings"
            for st in e[table]:
                self._standing(kind, refs[st[who]]["id"], st, year[st["raceId"]])

    def _sessions(self, race: dict[str, str | None], rnd: dict[str, Any]) -> None:
        """The sessions import_from_ergast.py gives a round: race, qualifying by era, practice, sprint."""
        year, date = int(race["year"]), dt.date.fromisoformat(race["date"])
        made: list[tuple[str, dt.date, str | None, int]] = [("R", date, race["time"], 2)]
        if year <= 1995 or year == 2003:
            kinds = ("QO", "QB") if year == 2003 else ("QB", "QB")
            made += [(kinds[0], date - dt.timedelta(2), None, 1), (kinds[1], date - dt.timedelta(1), None, 1)]
        elif year <= 2002:
            made.append(("QB", date - dt.timedelta(1), None, 1))
        elif year == 2004:
            made += [("QO", date - dt.timedelta(1), None, 1), ("QB", date - dt.timedelta(1), None, 1)]
        elif year == 2005:
            made += [("QB", date - dt.timedelta(1), None, 1)]
        else:
            quali = dt.date.fromisoformat(race["quali_date"]) if race["quali_date"] else date - dt.timedelta(1)
            made += [(q, quali, race["quali_time"], 1) for q in ("Q1", "Q2", "Q3")]
        sprint_weekend = race["sprint_date"] is not None
        for prefix, kind in (("fp1", "FP1"), ("fp2", "FP2"), ("fp3", "FP3")):
            if race[f"{prefix}_date"] and not (kind == "FP2" and sprint_weekend and year >= 2023):
                made.append((kind, dt.date.fromisoformat(race[f"{prefix}_date"]), race[f"{prefix}_time"], 1))
        if sprint_weekend:
            if year >= 2023:  # the sprint shootout / qualifying sits in the fp2 columns
                fp2 = dt.date.fromisoformat(race["fp2_date"])
                made += [(q, fp2, race["fp2_time"], 1) for q in ("SQ1", "SQ2", "SQ3")]
            made.append(("SR", dt.date.fromisoformat(race["sprint_date"]), race["sprint_time"], 2))
        made.sort(key=lambda m: (m[1], m[2] or "23:59:59"))
        for number, (kind, day, time, points) in enumerate(made, start=1):
            clock = dt.time.fromisoformat(time) if time else dt.time(0, 0)
            session = self.add(
                "session", round_id=rnd["id"], number=number, point_system_id=points, type=kind,
                timestamp=dt.datetime.combine(day, clock), has_time_data=time is not None,
                timezone="UTC", is_cancelled=False)  # fmt: skip
            if kind == "R":
                self.race_session[race["raceId"]] = session
            elif kind == "SR":
                self.sprint_session[race["raceId"]] = session
            elif kind.startswith("Q") and kind != "QO":
                self.quali_sessions[race["raceId"]].append(session)

    def _entry(self, session: dict, entry: dict, res: dict, text: str, rank: str | None) -> dict[str, Any]:
        return self.add(
            "sessionentry", session_id=session["id"], round_entry_id=entry["id"], position=int(res["positionOrder"]),
            is_classified=res["position"] is not None, status=self._status(res["positionText"], text), detail=text,
            points=float(res["points"]), is_eligible_for_points=True, grid=res["grid"], time=ms(res["milliseconds"]),
            fastest_lap_rank=rank, laps_completed=res["laps"])  # fmt: skip

    @staticmethod
    def _status(position_text: str, text: str) -> int:
        """SessionStatus: the positionText says how the car ended, the status text says why."""
        by_text = {"W": 30, "D": 20, "E": 20, "N": 1}
        if position_text in by_text:
            return by_text[position_text]
        if position_text == "F":
            return 41 if text == "Did not prequalify" else 40
        if position_text == "R":
            return 10 if text in ACCIDENTS else 11
        if text == "Finished":
            return 0
        return 1 if "Lap" in text or text == "Not classified" else 11

    def _lap(self, entry: dict, number: str | None, fastest: dict | None = None) -> dict[str, Any]:
        return self.add(
            "lap", session_entry_id=entry["id"], number=int(number) if number else None,
            time=ms(fastest["fastestLapTime"]) if fastest else None,
            average_speed=float(fastest["fastestLapSpeed"]) if fastest and fastest.get("fastestLapSpeed") else None,
            is_entry_fastest_lap=fastest is not None, is_deleted=False)  # fmt: skip

    def _qualifying(self, q: dict, entry: dict, res: dict, text: str) -> None:
        """One entry per Q session the driver took part in, its time as the entry's fastest lap."""
        dnq = res["positionText"] == "F"
        for i, session in enumerate(self.quali_sessions[q["raceId"]][:3]):
            time = ms(q[f"q{i + 1}"])
            if time is None and (i != 0 or q["position"] is None):
                continue
            quali_entry = self.add(
                "sessionentry", session_id=session["id"], round_entry_id=entry["id"], position=int(q["position"]),
                status=self._status("F", text) if dnq else None, detail=text if dnq else None,
                is_eligible_for_points=True)  # fmt: skip
            if time is not None:
                self.add("lap", session_entry_id=quali_entry["id"], time=time, is_entry_fastest_lap=True,
                         is_deleted=False)  # fmt: skip

    def _standing(self, kind: str, who: int, st: dict, year: str) -> None:
        rnd, race = self.rounds[st["raceId"]], self.race_session[st["raceId"]]
        adjustment = {"D": 101, "E": 102}.get(st["positionText"], 0)
        row = {"driver_id" if kind == "driver" else "team_id": who}
        common = dict(year=int(year), round_number=rnd["number"], win_count=int(st["wins"]), is_eligible=True,
                      adjustment_type=adjustment, season_id=rnd["season_id"], **row)  # fmt: skip
        sprint = self.sprint_session.get(st["raceId"])
        if sprint is not None:  # standings after the sprint too, not linked to the round (as Jolpica's)
            self.add(f"{kind}championship", session_id=sprint["id"], session_number=sprint["number"],
                     position=1, points=float(st["points"]) - 1, round_id=None, **common)  # fmt: skip
        self.add(f"{kind}championship", session_id=race["id"], session_number=race["number"],
                 position=int(st["position"]) if st["position"] else None, points=float(st["points"]),
                 round_id=rnd["id"], **common)  # fmt: skip

    def zip_bytes(self, edit: Callable[[str, list[str], list[list[str]]], None] | None = None,
                  leave_out: str | None = None) -> bytes:  # fmt: skip
        """The zip as generate_csv_dump.py makes it; `edit(model, header, rows)` may spoil it first."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for model in sorted(self.t):
                if model == leave_out:
                    continue
                header = dump_columns(model)
                rows = [[pg_cell(row.get(c)) for c in header] for row in self.t[model]]
                if edit:
                    edit(model, header, rows)
                text = io.StringIO()
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
                info = zipfile.ZipInfo(f"formula_one_{model}.csv", date_time=(1999, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text.getvalue().encode())
        return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The local dump server


class DumpServer(LocalServer):
    """Jolpica's dump endpoints on 127.0.0.1: the index, the delayed download (302), the file."""

    FILE = "/files/jolpica-f1-csv.zip"

    def __init__(self, payload: bytes):
        super().__init__()
        self.payload = payload
        self.published: dict[str, Any] = {}  # fields to publish instead of the payload's own
        self.requests: list[str] = []

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        self.requests.append(request.path)
        if request.path == "/data/dumps/download/":
            self.send(request, 200, json.dumps(self.index()).encode())
        elif request.path == "/data/dumps/download/delayed/?dump_type=csv":
            self.send(request, 302, b"", headers={"Location": self.FILE})
        elif request.path == self.FILE:
            self.send(request, 200, self.payload, "application/zip")
        else:
            self.send(request, 404, b'{"detail": "Not found."}')

    @property
    def index_url(self) -> str:
        return self.root + "/data/dumps/download/"

    def index(self) -> dict[str, Any]:
        """The index as docs/endpoints/data/dumps.md shows it (the latest dump needs a key)."""
        dump = {
            "dump_type": "csv",
            "file_hash": hashlib.sha256(self.payload).hexdigest(),
            "file_size": len(self.payload),
            "uploaded_at": "2025-01-01T12:00:00.000000Z",
            "download_url": self.root + "/data/dumps/download/delayed/?dump_type=csv",
        }
        dump.update(self.published)
        dump = {k: v for k, v in dump.items() if v is not None}
        latest = {**dump, "download_url": self.root + "/data/dumps/download/latest/?dump_type=csv"}
        return {"available_types": ["csv"], "latest_dumps": {"csv": latest}, "delayed_dumps": {"csv": dump},
                "delay_days": 14}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def jolpica(data_dir: Path) -> JolpicaDump:
    return JolpicaDump(data_dir)


@pytest.fixture(scope="module")
def dump_zip(jolpica: JolpicaDump) -> bytes:
    return jolpica.zip_bytes()


@pytest.fixture(scope="module")
def ergast(data_dir: Path) -> ErgastData:
    return ErgastData(data_dir)


@pytest.fixture
def dump_server(dump_zip: bytes):
    with DumpServer(dump_zip) as running:
        yield running


@pytest.fixture
def api(ergast: ErgastData):
    with ErgastServer(ergast) as running:
        yield running


@pytest.fixture(scope="module")
def both_paths(
    ergast: ErgastData, dump_zip: bytes, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """SEASONS fetched once from the dump and once from the API, both reusing the shared tables' ids."""
    root = tmp_path_factory.mktemp("both")
    with DumpServer(dump_zip) as dump, ErgastServer(ergast) as api:
        summary = fetch_seasons(SEASONS, root / "dump", api.base_url + "/unused", ids_from=data_dir,
                                show_progress=False, source="dump", dump_url=dump.index_url)  # fmt: skip
        assert summary["source"] == "dump" and summary["requests"] == 2
        assert api.requests == [], "the dump path asks the API nothing"
        fetch_seasons(SEASONS, root / "api", api.base_url, ids_from=data_dir, show_progress=False, source="api")
    return root / "dump", root / "api"


def lines(folder: Path, name: str) -> tuple[str, Counter]:
    text = (folder / TABLES[name].file).read_text(encoding="utf-8").split("\n")
    assert text[-1] == "", "LF after the last row"
    return text[0], Counter(text[1:-1])


def race_ids(data_dir: Path, seasons: list[int]) -> set[str]:
    with (data_dir / "races.csv").open() as handle:
        return {r["raceId"] for r in csv.DictReader(handle) if int(r["year"]) in seasons}


def original(data_dir: Path, name: str, races: set[str]) -> tuple[str, Counter]:
    text = (data_dir / TABLES[name].file).read_text(encoding="utf-8").splitlines()
    header = text[0].split(",")
    if "raceId" not in header:
        return text[0], Counter(text[1:])
    at = header.index("raceId")
    return text[0], Counter(line for line in text[1:] if line.split(",")[at] in races)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def spoil(model: str, column: str, value: Callable[[list[str]], str | None], row: int = 0):
    """An `edit` for zip_bytes: set one cell of one row (by index) of one table."""

    def edit(name: str, header: list[str], rows: list[list[str]]) -> None:
        if name == model:
            new = value(rows[row])
            rows[row][header.index(column)] = "" if new is None else new

    return edit


# ---------------------------------------------------------------------------------------------
# The dump path equals the API path


def test_the_fixture_follows_the_generators_layout(dump_zip: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(dump_zip)) as archive:
        names = archive.namelist()
        assert names == sorted(f"formula_one_{m}.csv" for m in JOLPICA_COLUMNS), "flat, one file per table"
        assert {i.date_time for i in archive.infolist()} == {(1999, 1, 1, 0, 0, 0)}
        header = archive.read("formula_one_sessionentry.csv").decode().split("\n", 1)[0].split(",")
    assert header[0] == "id" and header[1:] == sorted(header[1:])


@pytest.mark.parametrize("name", sorted(TABLES))
def test_dump_path_equals_api_path(both_paths: tuple[Path, Path], data_dir: Path, name: str) -> None:
    """Same header and the same rows, byte for byte, and both the shared tables' own rows."""
    from_dump, from_api = (lines(folder, name) for folder in both_paths)
    assert from_dump[0] == from_api[0]
    assert from_dump[1] == from_api[1], (
        f"only from the dump: {sorted(from_dump[1] - from_api[1])[:3]}; "
        f"only from the API: {sorted(from_api[1] - from_dump[1])[:3]}"
    )
    assert from_dump == original(data_dir, name, race_ids(data_dir, SEASONS))


def test_without_reference_ids_both_paths_number_alike(
    dump_server: DumpServer, api: ErgastServer, data_dir: Path, tmp_path: Path
) -> None:
    """Fresh ids too: both sources list in the same order, so the ids come out the same.

    The one difference: the dump has circuit altitude, the API has not.
    """
    seasons = [2023, 2024]
    dump_summary = fetch_seasons(seasons, tmp_path / "dump", show_progress=False, source="dump",
                                 dump_url=dump_server.index_url)  # fmt: skip
    fetch_seasons(seasons, tmp_path / "api", api.base_url, show_progress=False, source="api")
    assert dump_summary["dump"]["uploaded_at"] == "2025-01-01T12:00:00.000000Z"
    for name in TABLES:
        if name == "circuits":
            continue
        assert lines(tmp_path / "dump", name) == lines(tmp_path / "api", name), name

    def circuits(folder: Path) -> list[dict[str, str]]:
        with (folder / "circuits.csv").open(newline="") as handle:
            return list(csv.DictReader(handle))

    from_dump, from_api = circuits(tmp_path / "dump"), circuits(tmp_path / "api")
    assert [{**r, "alt": None} for r in from_dump] == [{**r, "alt": None} for r in from_api]
    altitude = {r["circuitRef"]: r["alt"] for r in circuits(data_dir)}
    assert {r["circuitRef"]: r["alt"] for r in from_dump} == altitude


def test_refetch_is_idempotent_across_sources(dump_server: DumpServer, api: ErgastServer, tmp_path: Path) -> None:
    """Dump, dump again, then the API into the same folder: the same bytes each time."""
    out = tmp_path / "f1"
    fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    first = folder_bytes(out)
    fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert folder_bytes(out) == first
    fetch_seasons([2024], out, api.base_url, show_progress=False, source="api")
    changed = {n for n, b in folder_bytes(out).items() if b != first[n]}
    assert changed == set(), f"the API path rewrote {changed}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1"], "no temporary files left behind"


def test_cli_downloads_the_dump_by_default(
    dump_server: DumpServer, api: ErgastServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`data fetch` with no --source: index, redirect, zip (3 hits, 2 requests), no API page."""
    out = tmp_path / "f1"
    code = main(["data", "fetch", "--seasons", "2024", "--out", str(out), "--base-url", api.base_url,
                 "--dump-url", dump_server.index_url, "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["source"] == "dump" and summary["requests"] == 2
    assert summary["rows"]["results"] == 479
    assert summary["dump"]["sha256"] == hashlib.sha256(dump_server.payload).hexdigest()
    assert dump_server.requests == [
        "/data/dumps/download/", "/data/dumps/download/delayed/?dump_type=csv", DumpServer.FILE]  # fmt: skip
    assert api.requests == []
    assert main(["validate-data", "--data-dir", str(out)]) == 0


def test_the_dump_index_is_found_on_the_api_server(dump_server: DumpServer, tmp_path: Path) -> None:
    """--base-url alone: the index is /data/dumps/download/ on the same server."""
    summary = fetch_seasons([2024], tmp_path / "f1", dump_server.root + "/ergast/f1", show_progress=False,
                            source="dump")  # fmt: skip
    assert summary["source"] == "dump" and dump_server.requests[0] == "/data/dumps/download/"


# ---------------------------------------------------------------------------------------------
# Failures: named, atomic, and (with --source auto) the API instead


@pytest.fixture
def fetched_before(dump_server: DumpServer, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder already holding 2024, to show failed fetches leave it byte for byte."""
    out = tmp_path / "f1"
    fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    dump_server.requests.clear()
    return out, folder_bytes(out)


def assert_untouched(out: Path, before: dict[str, bytes]) -> None:
    assert folder_bytes(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["f1"], "no temporary folders left behind"


def test_checksum_mismatch_is_refused(dump_server: DumpServer, fetched_before: tuple[Path, dict[str, bytes]]) -> None:
    out, before = fetched_before
    dump_server.published["file_hash"] = "0" * 64
    with pytest.raises(DumpError) as caught:
        fetch_seasons([2023, 2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    message = str(caught.value)
    assert DumpServer.FILE not in message and "/data/dumps/download/delayed/?dump_type=csv" in message
    assert f"sha256 {hashlib.sha256(dump_server.payload).hexdigest()} does not match file_hash {'0' * 64}" in message
    assert dump_server.index_url in message
    assert_untouched(out, before)


def test_checksum_mismatch_falls_back_to_the_api(
    dump_server: DumpServer, api: ErgastServer, fetched_before: tuple[Path, dict[str, bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    out, before = fetched_before
    dump_server.published["file_hash"] = "0" * 64
    with caplog.at_level(logging.WARNING, logger="pitwall_trainer.data.fetch"):
        summary = fetch_seasons([2024], out, api.base_url, show_progress=False, source="auto",
                                dump_url=dump_server.index_url)  # fmt: skip
    assert summary["source"] == "api" and summary["requests"] > 50
    assert "does not match file_hash" in summary["fallback"]
    assert any("paging the API instead" in r.message and "sha256" in r.message for r in caplog.records)
    assert folder_bytes(out) == before, "the API path rewrites the same tables"


def test_size_mismatch_is_refused(dump_server: DumpServer, fetched_before: tuple[Path, dict[str, bytes]]) -> None:
    out, before = fetched_before
    dump_server.published["file_size"] = len(dump_server.payload) + 10
    with pytest.raises(DumpError, match=r"got \d+ bytes, the dump index .* says file_size"):
        fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert_untouched(out, before)


@pytest.mark.parametrize(
    ("published", "field"),
    [({"file_hash": None}, "delayed_dumps.csv.file_hash"), ({"file_hash": "abc"}, "delayed_dumps.csv.file_hash"),
     ({"download_url": None}, "delayed_dumps.csv.download_url"), ({"file_size": "big"}, "delayed_dumps.csv.file_size")],
)  # fmt: skip
def test_a_bad_index_names_the_field(
    dump_server: DumpServer, fetched_before: tuple[Path, dict[str, bytes]], published: dict, field: str
) -> None:
    out, before = fetched_before
    dump_server.published.update(published)
    with pytest.raises(DumpError, match=f"{dump_server.index_url}: field {field} is"):
        fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert dump_server.requests == ["/data/dumps/download/"], "nothing is downloaded on a bad index"
    assert_untouched(out, before)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_corrupt_zip_is_refused_and_the_api_used(
    dump_server: DumpServer, api: ErgastServer, dump_zip: bytes, fetched_before: tuple[Path, dict[str, bytes]],
    damage: str,
) -> None:  # fmt: skip
    """Published as it is (the checksum matches), but not a zip one can read."""
    out, before = fetched_before
    if damage == "truncated":
        dump_server.payload = dump_zip[: len(dump_zip) // 2]
        expected = "is not a readable zip archive"
    else:  # the bytes of the largest member's compressed data, flipped: the CRC check catches it
        middle = bytearray(dump_zip)
        with zipfile.ZipFile(io.BytesIO(dump_zip)) as archive:
            biggest = max(archive.infolist(), key=lambda i: i.compress_size)
        start = biggest.header_offset + 30 + len(biggest.filename) + biggest.compress_size // 2
        middle[start : start + 64] = bytes(b ^ 0xFF for b in middle[start : start + 64])
        dump_server.payload = bytes(middle)
        expected = r"(formula_one_\w+\.csv in the zip is corrupt|not a readable zip archive)"
    with pytest.raises(DumpError, match=expected):
        fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert_untouched(out, before)
    summary = fetch_seasons([2024], out, api.base_url, show_progress=False, source="auto",
                            dump_url=dump_server.index_url)  # fmt: skip
    assert summary["source"] == "api" and summary["fallback"].startswith("DumpError")
    assert folder_bytes(out) == before


def last_row_line(jolpica: JolpicaDump, model: str) -> int:
    """The CSV line of a table's last row (a 2024 row: the fixture adds races in raceId order)."""
    return len(jolpica.t[model]) + 1


WRONG_DUMPS: dict[str, Callable[[JolpicaDump], tuple[dict[str, Any], str]]] = {
    "missing-table": lambda j: (
        {"leave_out": "pitstop"},
        r"the dump has no formula_one_pitstop\.csv \(it holds formula_one_baseteam\.csv",
    ),
    "missing-column": lambda j: (
        {"edit": lambda m, h, rows: h.__setitem__(h.index("detail"), "status_text") if m == "sessionentry" else None},
        r"formula_one_sessionentry\.csv, column detail, row 1: required column is missing from the header",
    ),
    "bad-integer": lambda j: (
        {"edit": spoil("sessionentry", "position", lambda r: "first", row=-1)},
        rf"formula_one_sessionentry\.csv, column position, row {last_row_line(j, 'sessionentry')}: "
        r"'first' is not an integer",
    ),
    "bad-interval": lambda j: (
        {"edit": spoil("pitstop", "duration", lambda r: "soon", row=-1)},
        rf"formula_one_pitstop\.csv, column duration, row {last_row_line(j, 'pitstop')}: 'soon' is not an interval",
    ),
    "dangling-id": lambda j: (
        {"edit": spoil("roundentry", "team_driver_id", lambda r: "999999", row=-1)},
        rf"formula_one_roundentry\.csv, column team_driver_id, row {last_row_line(j, 'roundentry')}: "
        r"999999 is not an id in formula_one_teamdriver\.csv",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_DUMPS))
def test_a_wrong_dump_names_the_file_and_field(
    jolpica: JolpicaDump, dump_server: DumpServer, fetched_before: tuple[Path, dict[str, bytes]], case: str
) -> None:
    out, before = fetched_before
    spoiled, message = WRONG_DUMPS[case](jolpica)
    dump_server.payload = jolpica.zip_bytes(**spoiled)
    with pytest.raises(DumpError, match=message):
        fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert_untouched(out, before)


def test_invalid_converted_data_is_refused_then_the_api_used(
    jolpica: JolpicaDump, dump_server: DumpServer, api: ErgastServer, fetched_before: tuple[Path, dict[str, bytes]]
) -> None:
    """A dump that reads fine but holds two winners of one race: the validator stops it."""
    out, before = fetched_before
    race = next(s for s in jolpica.t["session"] if s["type"] == "R" and s["timestamp"].year == 2024)
    second = [e for e in jolpica.t["sessionentry"] if e["session_id"] == race["id"] and e["position"] == 2][0]
    index = jolpica.t["sessionentry"].index(second)
    dump_server.payload = jolpica.zip_bytes(edit=spoil("sessionentry", "position", lambda r: "1", row=index))
    with pytest.raises(DataError) as caught:
        fetch_seasons([2024], out, show_progress=False, source="dump", dump_url=dump_server.index_url)
    assert any("results.csv, column positionOrder" in p and "2 winners" in p for p in caught.value.problems)
    assert_untouched(out, before)
    summary = fetch_seasons([2024], out, api.base_url, show_progress=False, source="auto",
                            dump_url=dump_server.index_url)  # fmt: skip
    assert summary["source"] == "api" and "2 winners" in summary["fallback"]
    assert folder_bytes(out) == before


def test_no_dump_on_the_server_falls_back_and_says_why(
    api: ErgastServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The local API server has no dump endpoints (404): `data fetch` pages the API and says why."""
    code = main(["data", "fetch", "--seasons", "2024", "--out", str(tmp_path / "f1"), "--base-url", api.base_url,
                 "--json"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["source"] == "api" and "HTTP 404" in summary["fallback"]
    assert api.requests[0] == "data/dumps/download"
    assert f"(the dump was not used: DumpError: {api.root}/data/dumps/download/: HTTP 404" in out
    assert any(r.levelname == "WARNING" and "paging the API instead" in r.message for r in caplog.records)


def test_cli_source_dump_fails_with_the_reason(
    dump_server: DumpServer, api: ErgastServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--source dump: no fallback; exit 1 (worth retrying) with the reason, not a traceback."""
    dump_server.published["file_hash"] = "0" * 64
    code = main(["data", "fetch", "--seasons", "2024", "--out", str(tmp_path / "f1"), "--source", "dump",
                 "--base-url", api.base_url, "--dump-url", dump_server.index_url])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "error: " in err and f"does not match file_hash {'0' * 64}" in err and "Traceback" not in err
    assert api.requests == [] and not (tmp_path / "f1").exists()
