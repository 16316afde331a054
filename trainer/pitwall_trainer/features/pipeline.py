"""Pre-race features from race entries: one row per driver per race, nothing from the race itself.

Two kinds of feature, because the models stand at different moments of a race weekend:

* HISTORY features use only races strictly before the race (by date): form, standings before
  the race, circuit history, teammate history. `quali_order` sees only these.
* WEEKEND features add the race's own qualifying, starting grid and sprint (the sprint always
  runs before the Sunday race). `race_winner` and `pit_window` see both.

Everything here is a pure function of the entries frame: a race's row is built from earlier
rows plus its own weekend columns, so the same code serves training, backtests and prediction.
The leakage test in tests/unit/test_features.py checks every column listed below.
"""

from __future__ import annotations

import pandas as pd

# Bump whenever the output of `compute_features` changes: it keys the on-disk cache.
FEATURE_VERSION = "9"

KEY_COLUMNS = [
    "raceId", "driverId", "constructorId", "year", "round", "date", "circuitId", "race_name",
    "driverRef", "constructorRef",
]
# What happened in the race: targets and evaluation inputs, never features.
OUTCOME_COLUMNS = [
    "won", "podium", "position_order", "points", "classified", "finished", "first_stop_lap",
    "n_stops", "laps", "status",
]

HISTORY_FEATURES = [
    "drv_points_before", "drv_position_before", "drv_wins_before", "drv_points_gap_to_leader",
    "drv_points_share_of_leader", "drv_prev_season_position", "drv_races_before",
    "drv_form_points_5", "drv_form_pos_5", "drv_form_finish_5", "drv_dnf_rate_10",
    "drv_win_rate_10", "drv_podium_rate_10", "drv_form_grid_5", "drv_form_quali_5",
    "drv_gain_5", "drv_prev_pos", "drv_prev_quali", "drv_prev_quali_rank",
    "drv_form_points_3", "drv_win_rate_3", "drv_form_quali_gap_3", "con_form_quali_gap_3", "con_form_points_3",
    "con_points_before", "con_position_before", "con_form_points_5", "con_form_best_pos_5",
    "con_dnf_rate_10", "con_win_rate_10", "con_form_quali_5",
    "drv_circuit_races", "drv_circuit_mean_pos", "drv_circuit_wins", "con_circuit_last_best_pos",
    "circuit_pole_win_rate", "circuit_median_first_stop", "circuit_median_first_stop_all", "circuit_prev_laps",
    "drv_prev_first_stop_share", "con_prev_first_stop_share",
    "tm_form_points_diff", "tm_quali_h2h_10",
    "drv_form_points_rank", "con_form_points_rank", "drv_form_quali_rank", "field_size",
]
WEEKEND_FEATURES = [
    "grid_pos", "pit_lane_start", "quali_pos", "quali_gap_pct", "q3_reached", "grid_minus_quali",
    "tm_quali_diff", "has_sprint", "sprint_pos", "sprint_points", "sprint_gain",
    "grid_pos_x_circuit_pole_win_rate",
]
FEATURES = HISTORY_FEATURES + WEEKEND_FEATURES


def _lagged(frame: pd.DataFrame, keys: list[str], column: str, window: int | None, how: str = "mean") -> pd.Series:
    """`how` (mean, sum or median) of `column` over the previous `window` rows of each group.

    `window=None` means all earlier rows. Rows must be sorted by date; every statistic excludes
    the row itself. Mean and sum use grouped cumulative sums (vectorised: the backtest and the
    leakage test recompute features often); median falls back to a per-group rolling window.
    """
    groups = [frame[k] for k in keys]
    values = frame[column].astype("float64")
    if how == "median":
        def per_group(series: pd.Series) -> pd.Series:
            shifted = series.shift(1)
            rolling = shifted.expanding(1) if window is None else shifted.rolling(window, min_periods=1)
            return rolling.median()

        return values.groupby(groups, sort=False).transform(per_group)
    total = values.fillna(0.0).groupby(groups, sort=False).cumsum()
    count = values.notna().astype("float64").groupby(groups, sort=False).cumsum()
    by_total, by_count = total.groupby(groups, sort=False), count.groupby(groups, sort=False)
    window_sum = by_total.shift(1).fillna(0.0)
    window_count = by_count.shift(1).fillna(0.0)
    if window is not None:
        window_sum = window_sum - by_total.shift(window + 1).fillna(0.0)
        window_count = window_count - by_count.shift(window + 1).fillna(0.0)
    if how == "sum":
        return window_sum.where(window_count > 0)
    return (window_sum / window_count.where(window_count > 0)).astype("float64")


def _season_before(frame: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """The last known value of `column` (an *_after standing) before this race in the same season."""
    groups = [frame[k] for k in keys + ["year"]]
    shifted = frame[column].astype("float64").groupby(groups, sort=False).shift(1)
    return shifted.groupby(groups, sort=False).ffill()


def _teammate_mean(frame: pd.DataFrame, column: str) -> pd.Series:
    """Mean of `column` over the driver's teammates in the same race (NaN when alone)."""
    group = frame.groupby(["raceId", "constructorId"], sort=False)[column]
    total, count = group.transform("sum"), group.transform("count")
    own = frame[column]
    others = count - own.notna().astype(int)
    return ((total - own.fillna(0)) / others.where(others > 0)).astype("float64")


def _race_rank(frame: pd.DataFrame, column: str, ascending: bool) -> pd.Series:
    return frame.groupby("raceId", sort=False)[column].rank(ascending=ascending, method="min")


def _constructor_history(entries: pd.DataFrame) -> pd.DataFrame:
    """Per constructor and race: team totals, then their lagged forms (earlier races only)."""
    team = entries.groupby(["raceId", "constructorId"], sort=False).agg(
        date=("date", "first"),
        year=("year", "first"),
        circuitId=("circuitId", "first"),
        team_points=("points", "sum"),
        team_best_pos=("position_order", "min"),
        team_dnf=("classified", lambda s: 1.0 - s.mean()),
        team_won=("won", "max"),
        team_quali=("quali_position", "min"),
        team_stop_share=("stop_share", "mean"),
        team_quali_gap=("quali_gap", "min"),
        con_points_after=("constructor_points_after", "max"),
        con_position_after=("constructor_position_after", "min"),
    ).reset_index()
    team = team.sort_values(["date", "raceId"], kind="stable").reset_index(drop=True)
    team["team_won"] = team["team_won"].astype(float)
    by = ["constructorId"]
    out = team[["raceId", "constructorId"]].copy()
    out["con_form_points_5"] = _lagged(team, by, "team_points", 5)
    out["con_form_best_pos_5"] = _lagged(team, by, "team_best_pos", 5)
    out["con_dnf_rate_10"] = _lagged(team, by, "team_dnf", 10)
    out["con_win_rate_10"] = _lagged(team, by, "team_won", 10)
    out["con_form_quali_5"] = _lagged(team, by, "team_quali", 5)
    out["con_form_quali_gap_3"] = _lagged(team, by, "team_quali_gap", 3)
    out["con_form_points_3"] = _lagged(team, by, "team_points", 3)
    out["con_points_before"] = _season_before(team, by, "con_points_after").fillna(0.0)
    out["con_position_before"] = _season_before(team, by, "con_position_after")
    # Team-level rows: a teammate's row in the same race must never count as "earlier".
    out["con_prev_first_stop_share"] = _lagged(team, by, "team_stop_share", 3)
    out["con_circuit_last_best_pos"] = _lagged(team, ["constructorId", "circuitId"], "team_best_pos", 1)
    return out


def _circuit_history(entries: pd.DataFrame) -> pd.DataFrame:
    """Per race: what earlier races at the same circuit said (pole conversion, stops, laps)."""
    race = entries.groupby("raceId", sort=False).agg(
        date=("date", "first"),
        circuitId=("circuitId", "first"),
        laps_run=("laps", "max"),
        median_first_stop=("first_stop_lap", "median"),
    ).reset_index()
    pole = entries[entries["quali_position"].eq(1)].groupby("raceId")["won"].max().astype(float)
    race["pole_won"] = race["raceId"].map(pole)
    race = race.sort_values(["date", "raceId"], kind="stable").reset_index(drop=True)
    out = race[["raceId"]].copy()
    out["circuit_pole_win_rate"] = _lagged(race, ["circuitId"], "pole_won", None)
    out["circuit_median_first_stop"] = _lagged(race, ["circuitId"], "median_first_stop", 3, "median")
    out["circuit_median_first_stop_all"] = _lagged(race, ["circuitId"], "median_first_stop", None, "median")
    out["circuit_prev_laps"] = _lagged(race, ["circuitId"], "laps_run", 1)
    return out


def compute_features(entries: pd.DataFrame) -> pd.DataFrame:
    """Keys, outcomes and FEATURES for every entry of `loader.race_entries` (sorted by date)."""
    e = entries.sort_values(["date", "raceId", "position_order"], kind="stable").reset_index(drop=True).copy()
    e["won"] = e["won"].astype(float)
    e["podium"] = e["podium"].astype(float)
    e["classified_f"] = e["classified"].astype(float)
    e["finished_f"] = e["finished"].astype(float)
    e["stop_share"] = e["first_stop_lap"] / e["laps"].groupby(e["raceId"]).transform("max")
    field_size = e.groupby("raceId", sort=False)["driverId"].transform("count").astype(float)

    out = e[[c for c in KEY_COLUMNS + OUTCOME_COLUMNS if c in e]].copy()
    out["quali_position"] = e["quali_position"]  # quali_order's target, race_winner's input
    out["field_size"] = field_size

    # --- weekend: own qualifying, grid and sprint -------------------------------------------
    grid = e["grid"].where(e["grid"] > 0)  # 0 = pit-lane start, NaN = unknown: both go to the back
    out["pit_lane_start"] = e["pit_lane_start"].astype(float)
    out["grid_pos"] = grid.fillna(field_size)
    out["quali_pos"] = e["quali_position"].fillna(field_size)
    pole_ms = e.groupby("raceId", sort=False)["best_quali_ms"].transform("min")
    gap = (e["best_quali_ms"] / pole_ms - 1.0) * 100.0
    out["quali_gap_pct"] = gap.fillna(gap.groupby(e["raceId"]).transform("max")).fillna(5.0).clip(upper=10.0)
    out["q3_reached"] = e["q3_ms"].notna().astype(float)
    out["grid_minus_quali"] = out["grid_pos"] - out["quali_pos"]
    out["tm_quali_diff"] = out["quali_pos"] - _teammate_mean(out, "quali_pos")
    out["has_sprint"] = e["sprint_position"].notna().groupby(e["raceId"]).transform("any").astype(float)
    out["sprint_pos"] = e["sprint_position"]
    out["sprint_points"] = e["sprint_points"].where(out["has_sprint"].eq(1.0))
    out["sprint_gain"] = e["sprint_grid"].where(e["sprint_grid"] > 0) - e["sprint_position"]

    # --- history: driver ------------------------------------------------------------------------
    d = ["driverId"]
    out["drv_points_before"] = _season_before(e, d, "driver_points_after").fillna(0.0)
    out["drv_position_before"] = _season_before(e, d, "driver_position_after")
    out["drv_wins_before"] = _season_before(e, d, "driver_wins_after").fillna(0.0)
    leader = out.groupby("raceId", sort=False)["drv_points_before"].transform("max")
    out["drv_points_gap_to_leader"] = leader - out["drv_points_before"]
    out["drv_points_share_of_leader"] = (out["drv_points_before"] / leader.where(leader > 0)).fillna(0.0)
    final = (
        e.groupby(["driverId", "year"], sort=False)["driver_position_after"].last().rename("pos").reset_index()
    )
    final["year"] = final["year"] + 1
    prev = e[["driverId", "year"]].merge(final, on=["driverId", "year"], how="left")["pos"]
    # The final standing of a season is known only after its last race: the next season's rows see it.
    out["drv_prev_season_position"] = prev.to_numpy()
    out["drv_races_before"] = e.groupby("driverId", sort=False).cumcount().astype(float)
    out["drv_form_points_5"] = _lagged(e, d, "points", 5)
    out["drv_form_pos_5"] = _lagged(e, d, "position_order", 5)
    out["drv_form_finish_5"] = _lagged(e, d, "finished_f", 5)
    out["drv_dnf_rate_10"] = 1.0 - _lagged(e, d, "classified_f", 10)
    out["drv_win_rate_10"] = _lagged(e, d, "won", 10)
    out["drv_podium_rate_10"] = _lagged(e, d, "podium", 10)
    out["drv_form_grid_5"] = _lagged(e.assign(g=out["grid_pos"]), d, "g", 5)
    out["drv_form_quali_5"] = _lagged(e, d, "quali_position", 5)
    out["drv_gain_5"] = _lagged(e.assign(gain=out["grid_pos"] - e["position_order"]), d, "gain", 5)
    out["drv_form_points_3"] = _lagged(e, d, "points", 3)
    out["drv_win_rate_3"] = _lagged(e, d, "won", 3)
    e["quali_gap"] = out["quali_gap_pct"]  # own-weekend value; only its lag is a history feature
    out["drv_form_quali_gap_3"] = _lagged(e, d, "quali_gap", 3)
    out["drv_prev_pos"] = _lagged(e, d, "position_order", 1)
    out["drv_prev_quali"] = _lagged(e, d, "quali_position", 1)
    out["drv_prev_quali_rank"] = _race_rank(out, "drv_prev_quali", ascending=True)

    # --- history: constructor, circuit, teammate -----------------------------------------------
    out = out.merge(_constructor_history(e), on=["raceId", "constructorId"], how="left")
    out = out.merge(_circuit_history(e), on="raceId", how="left")
    out["drv_circuit_races"] = e.groupby(["driverId", "circuitId"], sort=False).cumcount().astype(float)
    out["drv_circuit_mean_pos"] = _lagged(e, ["driverId", "circuitId"], "position_order", None)
    out["drv_circuit_wins"] = _lagged(e, ["driverId", "circuitId"], "won", None, "sum").fillna(0.0)
    out["drv_prev_first_stop_share"] = _lagged(e, d, "stop_share", 3)
    out["tm_form_points_diff"] = out["drv_form_points_5"] - _teammate_mean(out, "drv_form_points_5")
    beat = (e["quali_position"] < _teammate_mean(e, "quali_position")).astype(float)
    beat = beat.where(e["quali_position"].notna() & _teammate_mean(e, "quali_position").notna())
    out["tm_quali_h2h_10"] = _lagged(e.assign(b=beat), d, "b", 10)
    out["drv_form_points_rank"] = _race_rank(out, "drv_form_points_5", ascending=False)
    out["con_form_points_rank"] = _race_rank(out, "con_form_points_5", ascending=False)
    out["drv_form_quali_rank"] = _race_rank(out, "drv_form_quali_5", ascending=True)
    out["grid_pos_x_circuit_pole_win_rate"] = out["grid_pos"] * out["circuit_pole_win_rate"].fillna(0.5)

    missing = [c for c in FEATURES if c not in out]
    assert not missing, f"feature code forgot {missing}"
    for column in FEATURES:
        out[column] = out[column].astype("float64")
    return out
