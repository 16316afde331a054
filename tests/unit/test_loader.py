"""The loader: where data comes from, and race entries that keep the real data's quirks straight."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pitwall_trainer.data.loader import RED_FLAG_STOP_MS, load_tables, race_entries
from pitwall_trainer.data.paths import CACHE_ENV, DATA_ENV, fetch_cache_dir, resolve_data_dir
from pitwall_trainer.errors import DataError


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A --data-dir folder, an env folder and a filled cache, all distinct."""
    made = {name: tmp_path / name for name in ("arg", "env")}
    for folder in made.values():
        folder.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    made["cache"] = fetch_cache_dir()
    made["cache"].mkdir(parents=True)
    (made["cache"] / "races.csv").write_text("raceId\n")
    monkeypatch.setenv(DATA_ENV, str(made["env"]))
    return made


def test_data_dir_beats_env_and_cache(folders: dict[str, Path]) -> None:
    assert resolve_data_dir(folders["arg"]) == folders["arg"].resolve()


def test_env_beats_cache(folders: dict[str, Path]) -> None:
    assert resolve_data_dir(None) == folders["env"].resolve()


def test_cache_when_nothing_else(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV)
    assert resolve_data_dir(None) == folders["cache"]


def test_no_data_says_how_to_get_it(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV)
    (folders["cache"] / "races.csv").unlink()
    with pytest.raises(DataError, match=r"--data-dir.*PITWALL_DATA_DIR.*pitwall-train data fetch"):
        resolve_data_dir(None)


def test_data_dir_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir: .*nowhere is not a folder"):
        resolve_data_dir(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    return load_tables(data_dir)


@pytest.fixture(scope="module")
def entries(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return race_entries(tables)


def test_one_row_per_driver_per_race(entries: pd.DataFrame) -> None:
    assert not entries.duplicated(["raceId", "driverId"]).any()
    assert len(entries[entries["year"] == 2024]) == 479
    assert entries["date"].is_monotonic_increasing


def test_season_filter(tables: dict[str, pd.DataFrame]) -> None:
    only = race_entries(tables, seasons=[2022, 2024])
    assert set(only["year"]) == {2022, 2024}


def test_pit_lane_starts_flagged(entries: pd.DataFrame) -> None:
    recent = entries[entries["year"].between(2014, 2024)]
    assert int(recent["pit_lane_start"].sum()) == 79  # data README
    assert (recent.loc[recent["pit_lane_start"], "grid"] == 0).all()


def test_unclassified_finishers(entries: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> None:
    results = tables["results"]
    unclassified = results[results["position"].isna() & (results["raceId"] >= 900)]
    flagged = entries[~entries["classified"] & (entries["raceId"] >= 900)]
    assert len(flagged) == len(unclassified) > 0
    assert set(flagged["positionText"]) <= {"R", "D", "W", "N", "E", "F"}
    dsq = entries[(entries["raceId"] == 1134) & (entries["positionText"] == "D")]  # 2024 Belgian GP
    assert len(dsq) == 1 and not dsq["classified"].iloc[0] and dsq["position_order"].iloc[0] == 20


def test_red_flag_stops_excluded_from_first_stop(
    entries: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> None:
    stops = tables["pit_stops"].sort_values(["raceId", "driverId", "stop"])
    first = stops.groupby(["raceId", "driverId"]).first()
    red_first = first[first["milliseconds"] > RED_FLAG_STOP_MS].reset_index()
    assert len(red_first) > 0, "the real data has drivers whose first 'stop' was a red-flag tyre change"
    merged = red_first.merge(entries, on=["raceId", "driverId"])
    clean = stops[stops["milliseconds"] <= RED_FLAG_STOP_MS].groupby(["raceId", "driverId"])["lap"].min()
    for row in merged.itertuples():
        expected = clean.get((row.raceId, row.driverId))
        if pd.isna(expected):
            assert pd.isna(row.first_stop_lap)
        else:
            assert row.first_stop_lap == expected and row.first_stop_lap != row.lap


@pytest.mark.parametrize(("season", "wins", "races"), [(2024, 12, 24), (2023, 15, 22), (2022, 10, 22)])
def test_pole_sitter_win_rate(entries: pd.DataFrame, season: int, wins: int, races: int) -> None:
    """Known baselines: the pole-sitter (quali_position 1) won 50.0% / 68.2% / 45.5%."""
    year = entries[entries["year"] == season]
    assert year["raceId"].nunique() == races
    assert int((year["quali_position"].eq(1) & year["won"]).sum()) == wins
