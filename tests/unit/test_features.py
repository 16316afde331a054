"""Feature pipeline: no leakage (every feature of race R ignores R's result and later races), cache."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pitwall_trainer.data.loader import load_tables, race_entries
from pitwall_trainer.features import (
    FEATURE_VERSION,
    FEATURES,
    HISTORY_FEATURES,
    WEEKEND_FEATURES,
    compute_features,
    load_feature_matrix,
)
from pitwall_trainer.features.store import cache_key

# Tables whose rows for race R only exist after the race.
AFTER_RACE = ("driver_standings", "constructor_standings", "constructor_results", "pit_stops")
OUTCOME_COLUMNS = ("position", "positionText", "points", "laps", "time", "milliseconds", "fastestLap",
                   "rank", "fastestLapTime", "fastestLapSpeed")


@pytest.fixture(scope="module")
def tables(data_dir) -> dict[str, pd.DataFrame]:
    """The real tables from 2015 on (history features still have two seasons of past)."""
    full = load_tables(data_dir, validate=False)
    keep = set(full["races"].loc[full["races"]["year"] >= 2015, "raceId"])
    return {name: (t[t["raceId"].isin(keep)] if "raceId" in t else t) for name, t in full.items()}


@pytest.fixture(scope="module")
def full_features(tables) -> pd.DataFrame:
    return compute_features(race_entries(tables))


def truncate(tables: dict[str, pd.DataFrame], race_id: int, keep_weekend: bool) -> dict[str, pd.DataFrame]:
    """The data as known before race R starts (or before its weekend), with R's outcome scrambled.

    Later races are removed; R's after-race rows are dropped; R's result columns get a reversed
    order and wrong values (a leak would show up as a changed feature). Without the weekend,
    R's qualifying and sprint are removed and its grid shuffled too.
    """
    races = tables["races"]
    cutoff = races.loc[races["raceId"] == race_id, "date"].iloc[0]
    kept = set(races.loc[races["date"] <= cutoff, "raceId"])
    out = {name: (t[t["raceId"].isin(kept)].copy() if "raceId" in t else t.copy()) for name, t in tables.items()}
    for name in AFTER_RACE:
        if name in out:
            out[name] = out[name][out[name]["raceId"] != race_id]
    res = out["results"]
    mine = res["raceId"] == race_id
    rng = np.random.default_rng(race_id)
    n = int(mine.sum())
    res.loc[mine, "positionOrder"] = res.loc[mine, "positionOrder"].to_numpy()[::-1]
    res.loc[mine, "statusId"] = rng.permutation(res.loc[mine, "statusId"].to_numpy())
    for column in OUTCOME_COLUMNS:
        if column in res:
            res.loc[mine, column] = rng.permutation(res.loc[mine, column].to_numpy())
    if not keep_weekend:
        res.loc[mine, "grid"] = rng.permutation(np.arange(1, n + 1)).astype("int64")
        for name in ("qualifying", "sprint_results"):
            if name in out:
                out[name] = out[name][out[name]["raceId"] != race_id]
    out["results"] = res
    return out


def _race_ids(tables) -> dict[str, int]:
    races = tables["races"].sort_values("date")
    sprint_races = set(tables["sprint_results"]["raceId"])
    pit_lane = tables["results"].loc[tables["results"]["grid"] == 0, "raceId"]
    return {
        "2024 opener": int(races.loc[races["year"] == 2024, "raceId"].iloc[0]),
        "2023 sprint weekend": int(races.loc[(races["year"] == 2023) & races["raceId"].isin(sprint_races), "raceId"].iloc[1]),
        "2022 finale": int(races.loc[races["year"] == 2022, "raceId"].iloc[-1]),
        "pit-lane start": int(pit_lane[pit_lane.isin(races.loc[races["year"] >= 2019, "raceId"])].iloc[0]),
    }


def _rows(features: pd.DataFrame, race_id: int, columns: list[str]) -> pd.DataFrame:
    return features.loc[features["raceId"] == race_id, ["driverId", *columns]].sort_values("driverId").reset_index(drop=True)


def _changed(full: pd.DataFrame, cut: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if not np.allclose(full[c], cut[c], equal_nan=True, rtol=0, atol=1e-9)]


@pytest.mark.parametrize("label", ["2024 opener", "2023 sprint weekend", "2022 finale", "pit-lane start"])
def test_no_feature_sees_the_race_result_or_later_races(tables, full_features, label):
    race_id = _race_ids(tables)[label]
    cut = compute_features(race_entries(truncate(tables, race_id, keep_weekend=True)))
    full_rows, cut_rows = _rows(full_features, race_id, FEATURES), _rows(cut, race_id, FEATURES)
    assert list(full_rows["driverId"]) == list(cut_rows["driverId"])
    assert _changed(full_rows, cut_rows, FEATURES) == []


@pytest.mark.parametrize("label", ["2024 opener", "2023 sprint weekend", "2022 finale"])
def test_history_features_ignore_the_weekend_too(tables, full_features, label):
    """quali_order predicts before qualifying: its features must not move with R's qualifying, grid, sprint."""
    race_id = _race_ids(tables)[label]
    cut = compute_features(race_entries(truncate(tables, race_id, keep_weekend=False)))
    full_rows, cut_rows = _rows(full_features, race_id, HISTORY_FEATURES), _rows(cut, race_id, HISTORY_FEATURES)
    assert _changed(full_rows, cut_rows, HISTORY_FEATURES) == []


def test_the_leakage_check_detects_a_leak(tables, full_features):
    """The scrambling really changes R's outcome and weekend columns, so a leaky feature would fail."""
    race_id = _race_ids(tables)["2023 sprint weekend"]
    cut = compute_features(race_entries(truncate(tables, race_id, keep_weekend=False)))
    columns = ["position_order", "points", *WEEKEND_FEATURES]
    changed = _changed(_rows(full_features, race_id, columns), _rows(cut, race_id, columns), columns)
    assert {"position_order", "points", "grid_pos", "quali_pos", "sprint_pos"} <= set(changed)


def test_standings_before_the_race(full_features):
    """Round 1 starts from zero; round 2 sees exactly the standings after round 1."""
    season = full_features[full_features["year"] == 2024]
    r1, r2 = season[season["round"] == 1], season[season["round"] == 2]
    assert (r1["drv_points_before"] == 0).all()
    after_r1 = r1.set_index("driverId")["points"]  # no sprint in round 1: race points = standings
    before_r2 = r2.set_index("driverId")["drv_points_before"]
    common = after_r1.index.intersection(before_r2.index)
    assert (before_r2[common] == after_r1[common]).all()
    assert r2.loc[r2["drv_position_before"] == 1, "driverRef"].tolist() == ["max_verstappen"]


def test_weekend_features_read_the_own_weekend(full_features):
    race = full_features[(full_features["year"] == 2024) & (full_features["round"] == 6)]  # Miami, sprint
    assert (race["has_sprint"] == 1).all()
    assert race["sprint_pos"].notna().all()
    pole = race.loc[race["quali_pos"] == 1]
    assert len(pole) == 1 and pole["quali_gap_pct"].iloc[0] == 0.0
    assert (race["quali_gap_pct"] >= 0).all()


def test_pit_lane_start_goes_to_the_back(full_features):
    starts = full_features[full_features["pit_lane_start"] == 1]
    assert not starts.empty
    assert (starts["grid_pos"] == starts["field_size"]).all()


def test_feature_matrix_is_cached_and_reused(data_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path))
    first = load_feature_matrix(data_dir, validate=False)
    assert not first.cache_hit and first.path is not None and first.path.is_file()
    with caplog.at_level(logging.INFO, logger="pitwall_trainer.features.store"):
        second = load_feature_matrix(data_dir, validate=False)
    assert second.cache_hit and second.path == first.path
    assert "feature cache hit" in caplog.text
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.path.parent == tmp_path / "features"


def test_cache_key_changes_with_data_code_and_validation(monkeypatch):
    from pitwall_trainer.features import store

    base = cache_key("abc", True)
    assert base != cache_key("abd", True)
    assert base != cache_key("abc", False)
    monkeypatch.setattr(store, "FEATURE_VERSION", FEATURE_VERSION + "-changed")
    assert cache_key("abc", True) != base
