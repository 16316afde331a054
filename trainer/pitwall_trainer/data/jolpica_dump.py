"""Jolpica's CSV dump, in Jolpica's own schema, answered as Ergast API pages for the fetcher.

Where the schema comes from (repository jolpica/jolpica-f1): the dump is written by
`scripts/generate_csv_dump.py`: one `formula_one_<model>.csv` per table of the `formula_one`
app, flat in the zip, by PostgreSQL `COPY ... CSV HEADER` (NULL is an empty cell, booleans are
t/f, durations are intervals like `01:34:50.616`, times like `2024-03-02 15:00:00+00`), columns
`id` first, then alphabetical. The tables and their columns are the models in
`jolpica/formula_one/models/`, listed in `jolpica/formula_one/models/models.dbml`. Columns are
read by name, as Jolpica asks: their order may change, new ones are ignored.

Why pages: `DumpClient` answers the paths `fetch.fetch_tables` asks the API (`2024/results`,
`2024/5/pitstops`, ...) with the objects the API would send, built as Jolpica's API builds them
from the same tables (`jolpica_api/ergastapi/serializers.py`). One `Builder` then turns either
source into rows, so both write the same files, columns and ids. Where that API drops what the
Ergast tables hold, the dump is read closer to the tables: positionText also gets N (not
classified) and E (excluded); race gaps are measured to the fastest time and printed as the
tables print them; a fastest-lap rank without a lap (rank 0) is kept; circuits keep altitude.

Jolpica keeps no status table: statusIds are the Ergast table's, which Jolpica's API hard-codes
(`jolpica_api/ergastapi/status_mapping.py`); a status text not in it gets the next free id, in
the order the dump first uses it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from pitwall_trainer.data import ergast_json as ej
from pitwall_trainer.data.dump import DumpError
from pitwall_trainer.progress import Progress

Row = dict[str, Any]

# The columns read from each table: name:kind, `?` where an older or newer dump may lack it.
SCHEMA: dict[str, str] = {
    "season": "id:int year:int wikipedia:str",
    "circuit": "id:int reference:str name:str locality:str country:str latitude:float longitude:float "
    "altitude:float? wikipedia:str",
    "team": "id:int reference:str name:str nationality:str wikipedia:str",
    "driver": "id:int reference:str forename:str surname:str abbreviation:str nationality:str "
    "permanent_car_number:int date_of_birth:date wikipedia:str",
    "round": "id:int season_id:int circuit_id:int number:int name:str date:date wikipedia:str "
    "is_cancelled:bool?",
    "session": "id:int round_id:int number:int type:str timestamp:timestamp has_time_data:bool?",
    "teamdriver": "id:int team_id:int driver_id:int season_id:int",
    "roundentry": "id:int round_id:int team_driver_id:int car_number:int",
    "sessionentry": "id:int session_id:int round_entry_id:int position:int is_classified:bool status:int "
    "detail:str points:float grid:int time:duration fastest_lap_rank:int laps_completed:int",
    "pitstop": "id:int session_entry_id:int lap_id:int number:int duration:duration local_timestamp:str",
    "lap": "id:int session_entry_id:int number:int time:duration average_speed:float is_entry_fastest_lap:bool",
    "driverchampionship": "id:int driver_id:int year:int round_number:int session_number:int position:int "
    "points:float win_count:int is_eligible:bool adjustment_type:int round_id:int?",
    "teamchampionship": "id:int team_id:int year:int round_number:int session_number:int position:int "
    "points:float win_count:int is_eligible:bool adjustment_type:int round_id:int?",
}

# SessionEntry.status (jolpica/formula_one/models/session.py, SessionStatus).
FINISHED, LAPPED, DISQUALIFIED, DID_NOT_START = 0, 1, 20, 30
DID_NOT_QUALIFY = (40, 41)  # did not qualify, did not prequalify
EXCLUDED = frozenset({"Excluded", "Underweight"})  # disqualifications the Ergast tables mark E
# ChampionshipAdjustmentType: a standing's positionText.
ADJUSTMENT_TEXT = {101: "D", 102: "E"}

# The Ergast status table (statusId: status), as jolpica_api/ergastapi/status_mapping.py holds it.
ERGAST_STATUS: dict[int, str] = {
    1: "Finished", 2: "Disqualified", 3: "Accident", 4: "Collision", 5: "Engine", 6: "Gearbox",
    7: "Transmission", 8: "Clutch", 9: "Hydraulics", 10: "Electrical", 11: "+1 Lap", 12: "+2 Laps",
    13: "+3 Laps", 14: "+4 Laps", 15: "+5 Laps", 16: "+6 Laps", 17: "+7 Laps", 18: "+8 Laps",
    19: "+9 Laps", 20: "Spun off", 21: "Radiator", 22: "Suspension", 23: "Brakes", 24: "Differential",
    25: "Overheating", 26: "Mechanical", 27: "Tyre", 28: "Driver Seat", 29: "Puncture", 30: "Driveshaft",
    31: "Retired", 32: "Fuel pressure", 33: "Front wing", 34: "Water pressure", 35: "Refuelling",
    36: "Wheel", 37: "Throttle", 38: "Steering", 39: "Technical", 40: "Electronics", 41: "Broken wing",
    42: "Heat shield fire", 43: "Exhaust", 44: "Oil leak", 45: "+11 Laps", 46: "Wheel rim",
    47: "Water leak", 48: "Fuel pump", 49: "Track rod", 50: "+17 Laps", 51: "Oil pressure",
    53: "+13 Laps", 54: "Withdrew", 55: "+12 Laps", 56: "Engine fire", 58: "+26 Laps",
    59: "Tyre puncture", 60: "Out of fuel", 61: "Wheel nut", 62: "Not classified", 63: "Pneumatics",
    64: "Handling", 65: "Rear wing", 66: "Fire", 67: "Wheel bearing", 68: "Physical", 69: "Fuel system",
    70: "Oil line", 71: "Fuel rig", 72: "Launch control", 73: "Injured", 74: "Fuel", 75: "Power loss",
    76: "Vibrations", 77: "107% Rule", 78: "Safety", 79: "Drivetrain", 80: "Ignition",
    81: "Did not qualify", 82: "Injury", 83: "Chassis", 84: "Battery", 85: "Stalled", 86: "Halfshaft",
    87: "Crankshaft", 88: "+10 Laps", 89: "Safety concerns", 90: "Not restarted", 91: "Alternator",
    92: "Underweight", 93: "Safety belt", 94: "Oil pump", 95: "Fuel leak", 96: "Excluded",
    97: "Did not prequalify", 98: "Injection", 99: "Distributor", 100: "Driver unwell", 101: "Turbo",
    102: "CV joint", 103: "Water pump", 104: "Fatal accident", 105: "Spark plugs", 106: "Fuel pipe",
    107: "Eye injury", 108: "Oil pipe", 109: "Axle", 110: "Water pipe", 111: "+14 Laps", 112: "+15 Laps",
    113: "+25 Laps", 114: "+18 Laps", 115: "+22 Laps", 116: "+16 Laps", 117: "+24 Laps", 118: "+29 Laps",
    119: "+23 Laps", 120: "+21 Laps", 121: "Magneto", 122: "+44 Laps", 123: "+30 Laps", 124: "+19 Laps",
    125: "+46 Laps", 126: "Supercharger", 127: "+20 Laps", 128: "+42 Laps", 129: "Engine misfire",
    130: "Collision damage", 131: "Power Unit", 132: "ERS", 133: "+49 Laps", 134: "+38 Laps",
    135: "Brake duct", 136: "Seat", 137: "Damage", 138: "Debris", 139: "Illness", 140: "Undertray",
    141: "Cooling system",
}  # fmt: skip

# The API's weekend session keys, by Jolpica session type (SessionType).
SESSION_KEYS = {"FP1": "FirstPractice", "FP2": "SecondPractice", "FP3": "ThirdPractice", "Q1": "Qualifying",
                "SR": "Sprint"}  # fmt: skip
SPRINT_QUALIFYING = "SQ1"  # the API calls it SprintShootout in 2023, SprintQualifying from 2024
RACE, SPRINT = "R", "SR"


def member_file(model: str) -> str:
    return f"formula_one_{model}.csv"


# ---------------------------------------------------------------------------------------------
# Cells

_INTERVAL = re.compile(r"(-)?(?:(\d+) days? ?)?(\d+):(\d{2}):(\d{2})(?:\.(\d+))?")
_TRUE, _FALSE = frozenset({"t", "true", "1"}), frozenset({"f", "false", "0"})


def interval_ms(text: str) -> int:
    """A PostgreSQL interval (`01:34:50.616`, `1 day 02:00:00`) in milliseconds."""
    match = _INTERVAL.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    sign, days, hours, minutes, seconds, fraction = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    total = (((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)) * 1000
    total += micros // 1000
    return -total if sign else total


def utc_timestamp(text: str) -> dt.datetime:
    """`2024-03-02 15:00:00+00` (or ISO 8601) as an aware UTC datetime; no offset means UTC."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


PARSE: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _bool,
    "date": lambda t: dt.date.fromisoformat(t).isoformat(),
    "duration": interval_ms,
    "timestamp": utc_timestamp,
}
WHAT = {"int": "an integer", "float": "a number", "bool": "a boolean (t/f)", "date": "a date (YYYY-MM-DD)",
        "duration": "an interval (HH:MM:SS.fff)", "timestamp": "a timestamp"}  # fmt: skip


def clock(ms: int) -> str:
    """Milliseconds as the tables print times: `1:34:50.616`, `1:27.452`, `26.898`."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    if minutes:
        return f"{minutes}:{seconds:02d}.{millis:03d}"
    return f"{seconds}.{millis:03d}"


def race_time(ms: int, fastest: int, sprint: bool) -> str:
    """A result's time: the fastest car's full time, the others' gap to it.

    The tables print race gaps in seconds (`+68.130`) and sprint gaps in minutes (`+1:08.213`).
    """
    if ms == fastest:
        return clock(ms)
    gap = ms - fastest
    return "+" + (clock(gap) if sprint else f"{gap // 1000}.{gap % 1000:03d}")


def position_text(entry: Row) -> str | None:
    """Ergast positionText from Jolpica's classification, status and status text."""
    status, classified = entry["status"], entry["is_classified"]
    if classified is None:
        classified = status in (FINISHED, LAPPED, None) and entry["position"] is not None
    if classified:
        return None if entry["position"] is None else str(entry["position"])
    if status == DID_NOT_START:
        return "W"
    if status == DISQUALIFIED:
        return "E" if entry["detail"] in EXCLUDED else "D"
    if status in DID_NOT_QUALIFY:
        return "F"
    return "N" if status == LAPPED else "R"


def _text(value: Any) -> str | None:
    """A value as API text; floats the way the tables print numbers (14, 12.5, -37.8497)."""
    if value is None:
        return None
    if isinstance(value, float):
        return ej.format_points(value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Reading the zip


class DumpReader:
    """Rows of the dump's tables, parsed by SCHEMA; every bad cell is named by file, column and row."""

    def __init__(self, archive: zipfile.ZipFile, source: str):
        self.archive, self.source = archive, source
        self.members: dict[str, str] = {}
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if base.startswith("formula_one_") and base.endswith(".csv"):
                model = base[len("formula_one_") : -len(".csv")]
                if model in self.members:
                    raise DumpError(f"{source}: {base} is in the zip twice ({self.members[model]}, {name})")
                self.members[model] = name
        missing = [member_file(m) for m in SCHEMA if m not in self.members]
        if missing:
            raise DumpError(
                f"{source}: the dump has no {', '.join(missing)} "
                f"(it holds {', '.join(sorted(member_file(m) for m in self.members)) or 'no formula_one_*.csv'})"
            )

    def rows(self, model: str, keep: Callable[[dict[str, str]], bool] | None = None) -> list[Row]:
        """Parsed rows of one table; `keep` sees the raw cells first, so skipped rows cost little."""
        file = member_file(model)
        spec = [word.split(":") for word in SCHEMA[model].split()]
        out: list[Row] = []
        line = 1
        try:
            with self.archive.open(self.members[model]) as raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
                header = set(reader.fieldnames or [])
                for name, kind in spec:
                    if name not in header and not kind.endswith("?"):
                        raise DumpError(
                            f"{file}, column {name}, row 1: required column is missing from the header "
                            f"(in {self.source})"
                        )
                for cells in reader:
                    line = reader.line_num
                    if keep is not None and not keep(cells):
                        continue
                    row: Row = {"_line": line}
                    for name, kind in spec:
                        text = cells.get(name)
                        if text is None or text == "":
                            row[name] = None
                            continue
                        try:
                            row[name] = PARSE[kind.rstrip("?")](text)
                        except ValueError:
                            raise DumpError(
                                f"{file}, column {name}, row {line}: {text!r} is not {WHAT[kind.rstrip('?')]}"
                            ) from None
                    out.append(row)
        except (UnicodeDecodeError, csv.Error, zipfile.BadZipFile, zlib.error, OSError) as error:
            raise DumpError(f"{file}, column -, row {line}: cannot be read ({error}; in {self.source})") from None
        return out


def _index(rows: Iterable[Row], key: str = "id") -> dict[Any, Row]:
    return {row[key]: row for row in rows}


def _grouped(rows: Iterable[Row], key: str) -> dict[Any, list[Row]]:
    out: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out


def _order(value: Any) -> tuple[bool, Any]:
    """Sort key putting missing values last."""
    return (value is None, value if value is not None else 0)


# ---------------------------------------------------------------------------------------------
# The API's answers


class DumpClient:
    """Answers the fetcher's API paths from the dump, for `seasons` (lookups: all of them)."""

    requests_made = 0  # nothing is requested: the dump was downloaded once

    def __init__(
        self,
        archive: zipfile.ZipFile,
        seasons: Iterable[int],
        source: str = "the dump",
        show_progress: bool | None = None,
    ):
        self.wanted = set(seasons)
        reader = DumpReader(archive, source)
        with Progress(len(SCHEMA), "reading the dump", show_progress) as progress:

            def read(model: str, keep: Callable[[dict[str, str]], bool] | None = None) -> list[Row]:
                rows = reader.rows(model, keep)
                progress.advance(message=member_file(model))
                return rows

            self.seasons = _index(read("season"))
            self.circuits = _index(read("circuit"))
            self.teams = _index(read("team"))
            self.drivers = _index(read("driver"))
            years = {str(s["id"]): s["year"] for s in self.seasons.values()}
            rounds = read("round", lambda c: years.get(c.get("season_id", "")) in self.wanted)
            self.rounds = _index(r for r in rounds if not r.get("is_cancelled"))
            round_ids = {str(r) for r in self.rounds}
            self.sessions = _index(read("session", lambda c: c.get("round_id") in round_ids))
            self.team_drivers = _index(read("teamdriver"))
            self.round_entries = _index(read("roundentry", lambda c: c.get("round_id") in round_ids))
            session_ids = {str(s) for s in self.sessions}
            first_use: dict[str, int] = {}

            def entry_wanted(cells: dict[str, str]) -> bool:
                # Every status text of every season is noted, so the ids of texts new to the
                # Ergast table do not depend on the seasons fetched.
                detail = cells.get("detail") or ""
                if detail and detail not in first_use:
                    first_use[detail] = len(first_use)
                return cells.get("session_id") in session_ids

            self.entries = _index(read("sessionentry", entry_wanted))
            entry_ids = {str(e) for e in self.entries}
            self.pit_stops = read("pitstop", lambda c: c.get("session_entry_id") in entry_ids)
            pit_laps = {str(p["lap_id"]) for p in self.pit_stops}
            self.laps = _index(
                read(
                    "lap",
                    lambda c: c.get("session_entry_id") in entry_ids
                    and (c.get("id") in pit_laps or (c.get("is_entry_fastest_lap") or "").lower() in _TRUE),
                )
            )
            season_texts = {str(s) for s in self.wanted}
            self.driver_championships = read("driverchampionship", lambda c: c.get("year") in season_texts)
            self.team_championships = read("teamchampionship", lambda c: c.get("year") in season_texts)
            for row in (*self.driver_championships, *self.team_championships):
                row["_round"] = (row["year"], row["round_number"])

        self.status = dict(ERGAST_STATUS)
        known = set(self.status.values())
        for text in sorted(first_use, key=first_use.__getitem__):
            if text not in known:
                self.status[max(self.status) + 1] = text
        self.rounds_by_season = _grouped(self.rounds.values(), "season_id")
        self.sessions_by_round = _grouped(
            sorted(self.sessions.values(), key=lambda s: (_order(s["number"]), s["id"])), "round_id"
        )
        self.entries_by_session = _grouped(self.entries.values(), "session_id")
        self.fastest = {
            lap["session_entry_id"]: lap for lap in self.laps.values() if lap["is_entry_fastest_lap"]
        }
        self.stops_by_entry = _grouped(self.pit_stops, "session_entry_id")
        self.championships = {
            kind: _grouped(rows, "_round")
            for kind, rows in (("driverstandings", self.driver_championships),
                               ("constructorstandings", self.team_championships))
        }  # fmt: skip

    # -- paths -------------------------------------------------------------------------------

    def collect(self, path: str, table: str = "", items: str = "") -> list[dict[str, Any]]:
        """The items the API lists at `path` (all pages)."""
        parts = path.strip("/").split("/")
        lookups = {
            "seasons": self._seasons,
            "circuits": self._circuits,
            "constructors": self._constructors,
            "drivers": self._drivers,
            "status": self._status,
        }
        if len(parts) == 1 and parts[0] in lookups:
            return lookups[parts[0]]()
        if len(parts) == 2 and parts[0].isdigit():
            season, what = int(parts[0]), parts[1]
            if what == "races":
                return [self._race(r, full=True) for r in self._rounds(season)]
            if what in ("results", "sprint"):
                return self._results(season, RACE if what == "results" else SPRINT)
            if what == "qualifying":
                return self._qualifying(season)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            season, number, what = int(parts[0]), int(parts[1]), parts[2]
            found = [r for r in self._rounds(season) if r["number"] == number]
            if what == "pitstops":
                return self._pit_stops(found[0]) if found else []
            if what in ("driverstandings", "constructorstandings"):
                return self._standings(season, number, what) if found else []
        raise DumpError(f"the dump cannot answer the API path {path!r}")

    def nested(self, path: str, table: str = "", items: str = "", inner: str = "") -> list[dict[str, Any]]:
        """The dump has no pages to join: the same as `collect`."""
        return self.collect(path, table, items)

    # -- lookups -----------------------------------------------------------------------------

    def _refs(self, rows: dict[Any, Row]) -> list[Row]:
        """Rows with an Ergast ref, by ref (the API's order; Jolpica-only rows have none)."""
        return sorted((r for r in rows.values() if r["reference"]), key=lambda r: r["reference"])

    def _seasons(self) -> list[dict[str, Any]]:
        ordered = sorted(self.seasons.values(), key=lambda s: s["year"])
        return [{"season": str(s["year"]), "url": s["wikipedia"]} for s in ordered]

    def _circuit(self, c: Row) -> dict[str, Any]:
        location = {
            "lat": _text(c["latitude"]),
            "long": _text(c["longitude"]),
            "alt": _text(c.get("altitude")),
            "locality": c["locality"],
            "country": c["country"],
        }
        return {"circuitId": c["reference"], "url": c["wikipedia"], "circuitName": c["name"], "Location": location}

    def _circuits(self) -> list[dict[str, Any]]:
        return [self._circuit(c) for c in self._refs(self.circuits)]

    def _constructors(self) -> list[dict[str, Any]]:
        return [
            {"constructorId": t["reference"], "url": t["wikipedia"], "name": t["name"], "nationality": t["nationality"]}
            for t in self._refs(self.teams)
        ]

    def _drivers(self) -> list[dict[str, Any]]:
        return [
            {
                "driverId": d["reference"],
                "permanentNumber": _text(d["permanent_car_number"]),
                "code": d["abbreviation"],
                "url": d["wikipedia"],
                "givenName": d["forename"],
                "familyName": d["surname"],
                "dateOfBirth": d["date_of_birth"],
                "nationality": d["nationality"],
            }
            for d in self._refs(self.drivers)
        ]

    def _status(self) -> list[dict[str, Any]]:
        return [{"statusId": str(k), "status": v} for k, v in sorted(self.status.items())]

    # -- races -------------------------------------------------------------------------------

    def _rounds(self, season: int) -> list[Row]:
        ids = [s["id"] for s in self.seasons.values() if s["year"] == season]
        rounds = [r for i in ids for r in self.rounds_by_season.get(i, [])]
        for r in rounds:
            if r["number"] is None:
                raise DumpError(f"{member_file('round')}, column number, row {r['_line']}: missing (round id {r['id']})")
        return sorted(rounds, key=lambda r: r["number"])

    def _ref(self, rows: dict[Any, Row], model: str, key: Any, where: str) -> str:
        row = rows.get(key)
        if row is None:
            raise DumpError(f"{where}: {key} is not an id in {member_file(model)}")
        if not row["reference"]:
            raise DumpError(f"{member_file(model)}, column reference, row {row['_line']}: missing (id {key})")
        return row["reference"]

    def _race(self, rnd: Row, full: bool = False) -> dict[str, Any]:
        """A race as the API heads every list with it; `full` adds the weekend's sessions."""
        where = f"{member_file('round')}, column circuit_id, row {rnd['_line']}"
        self._ref(self.circuits, "circuit", rnd["circuit_id"], where)
        circuit = self.circuits[rnd["circuit_id"]]
        season = self.seasons[rnd["season_id"]]["year"]
        sessions = self.sessions_by_round.get(rnd["id"], [])
        race = next((s for s in sessions if s["type"] == RACE), None)
        obj: dict[str, Any] = {
            "season": str(season),
            "round": _text(rnd["number"]),
            "url": rnd["wikipedia"],
            "raceName": rnd["name"],
            "Circuit": self._circuit(circuit),
            "date": rnd["date"],
            "time": self._when(race)[1] if race else None,
        }
        if full:
            keys = dict(SESSION_KEYS)
            keys[SPRINT_QUALIFYING] = "SprintShootout" if season == 2023 else "SprintQualifying"
            for session in sessions:
                key = keys.get(session["type"])
                if key and key not in obj and session["timestamp"] is not None:
                    date, time = self._when(session)
                    obj[key] = {"date": date, "time": time}
        return obj

    @staticmethod
    def _when(session: Row) -> tuple[str | None, str | None]:
        """A session's UTC date and time (`06:00:00Z`, None when only the date is known)."""
        stamp = session["timestamp"]
        if stamp is None:
            return None, None
        known = session.get("has_time_data")
        time = stamp.strftime("%H:%M:%SZ") if known or known is None else None
        return stamp.date().isoformat(), time

    def _entrant(self, round_entry_id: Any, where: str) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Driver, constructor and car number of a round entry."""
        entry = self.round_entries.get(round_entry_id)
        if entry is None:
            raise DumpError(f"{where}: {round_entry_id} is not an id in {member_file('roundentry')}")
        td_where = f"{member_file('roundentry')}, column team_driver_id, row {entry['_line']}"
        team_driver = self.team_drivers.get(entry["team_driver_id"])
        if team_driver is None:
            raise DumpError(f"{td_where}: {entry['team_driver_id']} is not an id in {member_file('teamdriver')}")
        line = f"{member_file('teamdriver')}, column %s, row {team_driver['_line']}"
        driver = self._ref(self.drivers, "driver", team_driver["driver_id"], line % "driver_id")
        team = self._ref(self.teams, "team", team_driver["team_id"], line % "team_id")
        return {"driverId": driver}, {"constructorId": team}, _text(entry["car_number"])

    def _round_entries(self, rnd: Row, types: Callable[[str], bool]) -> list[tuple[Row, Row]]:
        """(session, entry) of the round's sessions whose type passes `types`, in session order."""
        sessions = [s for s in self.sessions_by_round.get(rnd["id"], []) if types(s["type"])]
        return [(s, e) for s in sessions for e in self.entries_by_session.get(s["id"], [])]

    def _results(self, season: int, kind: str) -> list[dict[str, Any]]:
        key = "Results" if kind == RACE else "SprintResults"
        out = []
        for rnd in self._rounds(season):
            entries = [e for _, e in self._round_entries(rnd, lambda t: t == kind)]
            entries.sort(key=lambda e: (_order(e["position"]), e["id"]))
            times = [e["time"] for e in entries if e["time"] is not None]
            items = [self._result(e, min(times) if times else None, kind == SPRINT) for e in entries]
            if items:
                out.append({**self._race(rnd), key: items})
        return out

    def _result(self, e: Row, fastest_time: int | None, sprint: bool) -> dict[str, Any]:
        where = f"{member_file('sessionentry')}, column round_entry_id, row {e['_line']}"
        driver, constructor, number = self._entrant(e["round_entry_id"], where)
        result: dict[str, Any] = {
            "number": number,
            "position": _text(e["position"]),
            "positionText": position_text(e),
            "points": _text(e["points"]),
            "Driver": driver,
            "Constructor": constructor,
            "grid": _text(e["grid"]),
            "laps": _text(e["laps_completed"]),
            "status": e["detail"],
        }
        if e["time"] is not None and fastest_time is not None:
            result["Time"] = {"millis": str(e["time"]), "time": race_time(e["time"], fastest_time, sprint)}
        lap = self.fastest.get(e["id"])
        fastest: dict[str, Any] = {"rank": _text(e["fastest_lap_rank"])}
        if lap is not None:
            fastest["lap"] = _text(lap["number"])
            fastest["Time"] = {"time": clock(lap["time"]) if lap["time"] is not None else None}
            fastest["AverageSpeed"] = {"units": "kph", "speed": _text(lap["average_speed"])}
        result["FastestLap"] = fastest
        return result

    def _qualifying(self, season: int) -> list[dict[str, Any]]:
        """Per driver, the Q1/Q2/Q3 times (fastest laps) and the last session's position."""
        out = []
        for rnd in self._rounds(season):
            by_entry: dict[Any, list[tuple[Row, Row]]] = defaultdict(list)
            pairs = self._round_entries(rnd, lambda t: t.startswith("Q"))
            pairs.sort(key=lambda p: (_order(p[0]["timestamp"]), _order(p[0]["number"]), p[0]["id"]))
            for session, entry in pairs:
                by_entry[entry["round_entry_id"]].append((session, entry))
            items = []
            for round_entry_id, sessions in by_entry.items():
                positions = [e["position"] for _, e in sessions if e["position"] is not None]
                if not positions:
                    continue
                where = f"{member_file('sessionentry')}, column round_entry_id, row {sessions[0][1]['_line']}"
                driver, constructor, number = self._entrant(round_entry_id, where)
                item: dict[str, Any] = {"number": number, "position": str(positions[-1]),
                                        "Driver": driver, "Constructor": constructor}  # fmt: skip
                for session, entry in sessions:
                    lap = self.fastest.get(entry["id"])
                    time = clock(lap["time"]) if lap is not None and lap["time"] is not None else None
                    if session["type"] in ("Q1", "Q2", "Q3"):
                        item[session["type"]] = time
                    elif not item.get("Q1"):
                        item["Q1"] = time
                    else:
                        item["Q2"] = time
                items.append(item)
            items.sort(key=lambda i: int(i["position"]))
            if items:
                out.append({**self._race(rnd), "QualifyingResults": items})
        return out

    def _pit_stops(self, rnd: Row) -> list[dict[str, Any]]:
        entries = [e["id"] for _, e in self._round_entries(rnd, lambda t: t == RACE)]
        stops = [s for e in entries for s in self.stops_by_entry.get(e, [])]
        items = []
        stops.sort(key=lambda s: (_order(s["local_timestamp"]), _order(self._lap_number(s)), _order(s["number"])))
        for stop in stops:  # in the API's order: by the time of day
            entry = self.entries[stop["session_entry_id"]]
            where = f"{member_file('sessionentry')}, column round_entry_id, row {entry['_line']}"
            driver = self._entrant(entry["round_entry_id"], where)[0]["driverId"]
            duration = stop["duration"]
            items.append(
                {
                    "driverId": driver,
                    "lap": _text(self._lap_number(stop)),
                    "stop": _text(stop["number"]),
                    "time": stop["local_timestamp"],
                    "duration": None if duration is None else clock(duration),
                }
            )
        return [{**self._race(rnd), "PitStops": items}] if items else []

    def _lap_number(self, stop: Row) -> int | None:
        lap = self.laps.get(stop["lap_id"])
        if lap is None:
            raise DumpError(
                f"{member_file('pitstop')}, column lap_id, row {stop['_line']}: "
                f"{stop['lap_id']} is not an id in {member_file('lap')}"
            )
        return lap["number"]

    def _standings(self, season: int, number: int, what: str) -> list[dict[str, Any]]:
        """The standings after the round: Jolpica links only the round's last scoring session's
        rows (the race's, not the sprint's) to the round, and its API lists those."""
        drivers = what == "driverstandings"
        rows = self.championships[what].get((season, number), [])
        rows = [r for r in rows if r.get("round_id") is not None] or rows
        if not rows:
            return []
        last = max(_order(r["session_number"]) for r in rows)
        rows = [r for r in rows if _order(r["session_number"]) == last]
        rows.sort(key=lambda r: (_order(r["position"]), -(r["points"] or 0.0), r["id"]))
        model = "driverchampionship" if drivers else "teamchampionship"
        items = []
        for r in rows:
            where = f"{member_file(model)}, column {'driver_id' if drivers else 'team_id'}, row {r['_line']}"
            if drivers:
                who = {"Driver": {"driverId": self._ref(self.drivers, "driver", r["driver_id"], where)}}
            else:
                who = {"Constructor": {"constructorId": self._ref(self.teams, "team", r["team_id"], where)}}
            if r["adjustment_type"] in ADJUSTMENT_TEXT:
                text = ADJUSTMENT_TEXT[r["adjustment_type"]]
            elif r["is_eligible"] is False:
                text = "-"
            else:
                text = _text(r["position"])
            items.append(
                {"position": _text(r["position"]), "positionText": text, "points": _text(r["points"]),
                 "wins": _text(r["win_count"]), **who}  # fmt: skip
            )
        key = "DriverStandings" if drivers else "ConstructorStandings"
        return [{"season": str(season), "round": str(number), key: items}]
