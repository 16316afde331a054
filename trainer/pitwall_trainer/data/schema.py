"""The Ergast-schema tables the trainer reads: files, columns, types, keys and references.

One description serves the loader (dtypes), the validator (checks) and the fetcher (which
columns to write, in which order). Column order is the Ergast CSV dump's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Column kinds: "int" and "float" are numeric (NULL allowed where `nullable`), "str" is text,
# "date" is YYYY-MM-DD, "time" is HH:MM:SS.
INT, FLOAT, STR, DATE, TIME = "int", "float", "str", "date", "time"

NULL = r"\N"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    # column -> (table, column) it must reference
    references: dict[str, tuple[str, str]] = field(default_factory=dict)
    # whether the trainer cannot work without it
    required: bool = True

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse 'name:kind[?]' words; a trailing ? marks a nullable column."""
    out = []
    for word in spec.split():
        name, kind = word.split(":")
        nullable = kind.endswith("?")
        out.append(Column(name, kind.rstrip("?"), nullable))
    return tuple(out)


_RESULT_REFS = {
    "raceId": ("races", "raceId"),
    "driverId": ("drivers", "driverId"),
    "constructorId": ("constructors", "constructorId"),
    "statusId": ("status", "statusId"),
}

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "circuits",
            _cols("circuitId:int circuitRef:str name:str location:str? country:str? lat:float? lng:float? alt:float? url:str?"),
            ("circuitId",),
        ),
        Table(
            "constructors",
            _cols("constructorId:int constructorRef:str name:str nationality:str? url:str?"),
            ("constructorId",),
        ),
        Table(
            "drivers",
            _cols("driverId:int driverRef:str number:int? code:str? forename:str surname:str dob:date? nationality:str? url:str?"),
            ("driverId",),
        ),
        Table("status", _cols("statusId:int status:str"), ("statusId",)),
        Table("seasons", _cols("year:int url:str?"), ("year",), required=False),
        Table(
            "races",
            _cols(
                "raceId:int year:int round:int circuitId:int name:str date:date time:time? url:str? "
                "fp1_date:date? fp1_time:time? fp2_date:date? fp2_time:time? fp3_date:date? fp3_time:time? "
                "quali_date:date? quali_time:time? sprint_date:date? sprint_time:time?"
            ),
            ("raceId",),
            {"circuitId": ("circuits", "circuitId")},
        ),
        Table(
            "results",
            _cols(
                "resultId:int raceId:int driverId:int constructorId:int number:int? grid:int? position:int? "
                "positionText:str positionOrder:int points:float laps:int? time:str? milliseconds:int? "
                "fastestLap:int? rank:int? fastestLapTime:str? fastestLapSpeed:float? statusId:int"
            ),
            ("resultId",),
            _RESULT_REFS,
        ),
        Table(
            "qualifying",
            _cols("qualifyId:int raceId:int driverId:int constructorId:int number:int? position:int? q1:str? q2:str? q3:str?"),
            ("qualifyId",),
            {k: v for k, v in _RESULT_REFS.items() if k != "statusId"},
        ),
        Table(
            "sprint_results",
            _cols(
                "resultId:int raceId:int driverId:int constructorId:int number:int? grid:int? position:int? "
                "positionText:str positionOrder:int points:float laps:int? time:str? milliseconds:int? "
                "fastestLap:int? fastestLapTime:str? statusId:int rank:int?"
            ),
            ("resultId",),
            _RESULT_REFS,
            required=False,
        ),
        Table(
            "pit_stops",
            _cols("raceId:int driverId:int stop:int lap:int time:time? duration:str? milliseconds:int?"),
            ("raceId", "driverId", "stop"),
            {"raceId": ("races", "raceId"), "driverId": ("drivers", "driverId")},
            required=False,
        ),
        Table(
            "driver_standings",
            _cols("driverStandingsId:int raceId:int driverId:int points:float position:int? positionText:str? wins:int"),
            ("driverStandingsId",),
            {"raceId": ("races", "raceId"), "driverId": ("drivers", "driverId")},
        ),
        Table(
            "constructor_standings",
            _cols("constructorStandingsId:int raceId:int constructorId:int points:float position:int? positionText:str? wins:int"),
            ("constructorStandingsId",),
            {"raceId": ("races", "raceId"), "constructorId": ("constructors", "constructorId")},
            required=False,
        ),
        Table(
            "constructor_results",
            _cols("constructorResultsId:int raceId:int constructorId:int points:float? status:str?"),
            ("constructorResultsId",),
            {"raceId": ("races", "raceId"), "constructorId": ("constructors", "constructorId")},
            required=False,
        ),
    ]
}
