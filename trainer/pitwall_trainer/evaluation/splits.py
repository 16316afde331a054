"""Time-series splits by race date only: every training race precedes every test race.

Races are the unit (all drivers of a race fall on one side); folds never shuffle across time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pitwall_trainer.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    name: str
    train_races: tuple[int, ...]
    test_races: tuple[int, ...]

    def train_mask(self, frame: pd.DataFrame) -> pd.Series:
        return frame["raceId"].isin(self.train_races)

    def test_mask(self, frame: pd.DataFrame) -> pd.Series:
        return frame["raceId"].isin(self.test_races)


def race_calendar(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per race (raceId, date, year, round, race_name), in date order."""
    cols = [c for c in ("raceId", "date", "year", "round", "race_name", "circuitId") if c in frame]
    races = frame[cols].drop_duplicates("raceId")
    return races.sort_values(["date", "raceId"], kind="stable").reset_index(drop=True)


def _fold(name: str, calendar: pd.DataFrame, test: pd.DataFrame, first_train_year: int) -> Fold:
    start = test["date"].min()
    train = calendar[(calendar["date"] < start) & (calendar["year"] >= first_train_year)]
    if train.empty:
        raise ConfigError(f"{name}: no races before {pd.Timestamp(start).date()} to train on")
    return Fold(name, tuple(int(r) for r in train["raceId"]), tuple(int(r) for r in test["raceId"]))


def season_races(calendar: pd.DataFrame, season: int) -> pd.DataFrame:
    races = calendar[calendar["year"] == season]
    if races.empty:
        years = calendar["year"]
        raise ConfigError(f"--season: no races for {season} in the data ({years.min()}-{years.max()})")
    return races


def backtest_folds(frame: pd.DataFrame, season: int, first_train_year: int) -> list[Fold]:
    """One fold per race of `season`, trained on every race before it (retrain per race)."""
    calendar = race_calendar(frame)
    races = season_races(calendar, season)
    return [
        _fold(f"{season} R{int(r['round'])}", calendar, races[races["raceId"] == r["raceId"]], first_train_year)
        for _, r in races.iterrows()
    ]


def walk_forward_folds(
    frame: pd.DataFrame, eval_races: pd.DataFrame, n_folds: int, first_train_year: int
) -> list[Fold]:
    """Expanding window: `eval_races` cut into `n_folds` consecutive blocks, each trained on all before."""
    if n_folds < 1:
        raise ConfigError(f"--folds: must be at least 1, got {n_folds}")
    calendar = race_calendar(frame)
    eval_races = eval_races.sort_values(["date", "raceId"], kind="stable")
    n_folds = min(n_folds, len(eval_races))
    blocks = np.array_split(np.arange(len(eval_races)), n_folds)
    return [
        _fold(f"fold {i + 1}/{n_folds}", calendar, eval_races.iloc[block], first_train_year)
        for i, block in enumerate(blocks)
    ]


def temporal_holdout(frame: pd.DataFrame, test_races: pd.DataFrame, first_train_year: int) -> Fold:
    """A single split: train on every race before the first test race."""
    return _fold("holdout", race_calendar(frame), test_races, first_train_year)
