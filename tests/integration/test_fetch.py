"""`data fetch` against a local Ergast-format server built from the shared tables.

What "equal" means here. The API has no surrogate ids, so:
* with `ids_from` set to the shared tables (ids reused by natural key), every fetched file has the
  original header and exactly the original lines for the fetched races (race-keyed tables) or all
  original lines (lookup tables): the same multiset of byte-identical rows; row order may differ;
* without it, ids are new, and the tables are equal once each row's surrogate id is dropped and its
  references are mapped through the refs (driverRef, constructorRef, circuitRef, (year, round));
  circuit altitude, absent from the API, is NULL.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from pitwall_trainer.cli import main
from pitwall_trainer.data.fetch import ApiClient, FetchError, fetch_seasons
from pitwall_trainer.data.loader import load_race_entries
from pitwall_trainer.data.paths import CACHE_ENV, DATA_ENV, fetch_cache_dir, resolve_data_dir
from pitwall_trainer.data.schema import TABLES
from pitwall_trainer.errors import ConfigError, DataError

from tests.ergast_server import ErgastData, ErgastServer

pytestmark = pytest.mark.integration

SEASONS = [2023, 2024]


@pytest.fixture(scope="module")
def ergast(data_dir: Path) -> ErgastData:
    return ErgastData(data_dir)


@pytest.fixture
def server(ergast: ErgastData):
    with ErgastServer(ergast) as running:
        yield running


@pytest.fixture(scope="module")
def reference_fetch(ergast: ErgastData, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fetch of 2023-2024 reusing the shared tables' ids, shared by the comparisons."""
    out = tmp_path_factory.mktemp("fetch") / "f1"
    with ErgastServer(ergast) as running:
        fetch_seasons(SEASONS, out, running.base_url, ids_from=data_dir, show_progress=False)
    return out


def race_ids(data_dir: Path, seasons: list[int]) -> set[str]:
    with (data_dir / "races.csv").open() as handle:
        return {r["raceId"] for r in csv.DictReader(handle) if int(r["year"]) in seasons}


def original_lines(data_dir: Path, name: str, races: set[str]) -> tuple[str, list[str]]:
    """Header and the original lines of a table that belong to `races` (all, for lookups)."""
    lines = (data_dir / TABLES[name].file).read_text().splitlines()
    header = lines[0].split(",")
    if "raceId" not in header:
        return lines[0], lines[1:]
    at = header.index("raceId")
    return lines[0], [line for line in lines[1:] if line.split(",")[at] in races]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_fetch_reproduces_original_rows(reference_fetch: Path, data_dir: Path, name: str) -> None:
    header, expected = original_lines(data_dir, name, race_ids(data_dir, SEASONS))
    lines = (reference_fetch / TABLES[name].file).read_bytes().decode().split("\n")
    assert lines[-1] == "", "LF after the last row"
    assert lines[0] == header
    got = lines[1:-1]
    assert len(got) == len(expected)
    assert Counter(got) == Counter(expected), (
        f"only fetched: {sorted(set(got) - set(expected))[:3]}; only original: {sorted(set(expected) - set(got))[:3]}"
    )


def read_rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / TABLES[name].file).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_fetch_without_reference_equals_up_to_ids(
    server: ErgastServer, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f1"
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    races = race_ids(data_dir, [2024])
    refs = {
        "circuitId": ("circuits", "circuitRef"),
        "constructorId": ("constructors", "constructorRef"),
        "driverId": ("drivers", "driverRef"),
    }

    def natural(folder: Path, name: str) -> Counter:
        maps = {col: {r[col]: r[ref] for r in read_rows(folder, table)} for col, (table, ref) in refs.items()}
        maps["raceId"] = {r["raceId"]: f"{r['year']}/{r['round']}" for r in read_rows(folder, "races")}
        own = (
            TABLES[name].key[0] if len(TABLES[name].key) == 1 and name not in {"seasons", "status"} else None
        )
        rows = Counter()
        for row in read_rows(folder, name):
            if folder == data_dir and "raceId" in row and row["raceId"] not in races:
                continue
            cells = tuple(
                (col, maps[col].get(value, value) if col in maps else value)
                for col, value in row.items()
                if col not in {own, "alt"}
            )
            rows[cells] += 1
        return rows

    for name in TABLES:
        assert natural(out, name) == natural(data_dir, name), name
    assert {r["alt"] for r in read_rows(out, "circuits")} == {r"\N"}


def test_second_fetch_is_idempotent_and_survives_429(server: ErgastServer, tmp_path: Path) -> None:
    out = tmp_path / "f1"
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    first = folder_bytes(out)
    server.requests.clear()
    server.throttle, server.retry_after = 1, "1"
    started = time.monotonic()
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 was not honoured"
    assert server.requests[0] == server.requests[1] == "seasons", "the throttled request is retried"
    assert folder_bytes(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1"], "no temporary folders left behind"


def test_failed_fetch_leaves_folder_untouched(server: ErgastServer, tmp_path: Path) -> None:
    out = tmp_path / "f1"
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    before = folder_bytes(out)
    server.broken = {"2024/12/pitstops"}
    with pytest.raises(FetchError, match="2024/12/pitstops"):
        fetch_seasons([2023, 2024], out, server.base_url, show_progress=False)
    assert folder_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1"]


def test_invalid_fetched_data_is_refused(server: ErgastServer, ergast: ErgastData, tmp_path: Path) -> None:
    """The API answers, but with two winners in one race: nothing is written, exit code 2."""
    out = tmp_path / "f1"
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    before = folder_bytes(out)
    race = ergast.by_round[("2024", "5")]["raceId"]
    second = ergast.rows["results"][race][1]
    saved = second["positionOrder"]
    second["positionOrder"] = "1"
    try:
        with pytest.raises(DataError) as caught:
            fetch_seasons([2024], out, server.base_url, show_progress=False)
    finally:
        second["positionOrder"] = saved
    assert any("results.csv, column positionOrder" in p and "2 winners" in p for p in caught.value.problems)
    assert caught.value.exit_code == 2
    assert folder_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1"]


def test_refuses_to_replace_a_folder_of_other_files(server: ErgastServer, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        fetch_seasons([2024], tmp_path, server.base_url, show_progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_fetch_keeps_other_seasons(server: ErgastServer, data_dir: Path, tmp_path: Path) -> None:
    """Fetching 2024 into a folder holding 2023 keeps 2023's rows and ids."""
    out = tmp_path / "f1"
    fetch_seasons([2023], out, server.base_url, ids_from=data_dir, show_progress=False)
    fetch_seasons([2024], out, server.base_url, show_progress=False)
    header, expected = original_lines(data_dir, "results", race_ids(data_dir, SEASONS))
    got = (out / "results.csv").read_text().splitlines()
    assert got[0] == header
    assert Counter(got[1:]) == Counter(expected)


def test_retry_after_is_bounded(server: ErgastServer) -> None:
    server.throttle, server.retry_after = 1, "3600"
    client = ApiClient(base_url=server.base_url, max_wait=60)
    with pytest.raises(FetchError, match="asks to wait 3600s"):
        client.collect("seasons", "SeasonTable", "Seasons")


def test_retries_give_up(server: ErgastServer) -> None:
    server.throttle, server.retry_after = 10, "0"
    client = ApiClient(base_url=server.base_url, retries=2)
    with pytest.raises(FetchError, match="HTTP 429 after 3 attempts"):
        client.collect("seasons", "SeasonTable", "Seasons")
    assert len(server.requests) == 3


def test_pages_are_followed(server: ErgastServer) -> None:
    client = ApiClient(base_url=server.base_url)
    drivers = client.collect("drivers", "DriverTable", "Drivers")
    assert len(drivers) == 861 and len(server.requests) == 9
    results = client.nested("2024/results", "RaceTable", "Races", "Results")
    # 479 rows in 5 pages of 100: the pages split races (Australia had 19 starters), joined again.
    assert [r["round"] for r in results] == [str(n) for n in range(1, 25)]
    assert sum(len(r["Results"]) for r in results) == 479 and len(server.requests) == 9 + 5
    assert all(len(r["Results"]) in (19, 20) for r in results)


def test_cli_fetch_json(server: ErgastServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f1"
    code = main(
        ["data", "fetch", "--seasons", "2024", "--out", str(out), "--base-url", server.base_url, "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"]["results"] == 479 and summary["out"] == str(out.resolve())
    assert main(["validate-data", "--data-dir", str(out)]) == 0


def test_cli_fetch_fills_the_cache_the_loader_reads(
    server: ErgastServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert main(["data", "fetch", "--seasons", "2024", "--base-url", server.base_url]) == 0
    assert resolve_data_dir(None) == fetch_cache_dir()
    entries = load_race_entries()
    assert entries["raceId"].nunique() == 24 and int(entries["won"].sum()) == 24
