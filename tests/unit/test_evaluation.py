"""Evaluation: splits by race date, metrics on hand-made races, baselines on the real 2024 season, card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.evaluation.backtest import backtest
from pitwall_trainer.evaluation.metrics import pit_window_metrics, quali_order_metrics, race_winner_metrics
from pitwall_trainer.evaluation.splits import backtest_folds, race_calendar, walk_forward_folds


@pytest.fixture(scope="module")
def frame(data_dir, tmp_path_factory) -> pd.DataFrame:
    from pitwall_trainer.features import load_feature_matrix

    with pytest.MonkeyPatch.context() as patch:  # keep the user's cache untouched
        patch.setenv("PITWALL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pitwall-cache"))
        return load_feature_matrix(data_dir, validate=False).frame


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pitwall-cache"))


def _dates(frame, races):
    return frame.loc[frame["raceId"].isin(races), "date"]


def test_backtest_folds_train_on_every_earlier_race_only(frame):
    folds = backtest_folds(frame, 2024, 2014)
    assert len(folds) == 24
    calendar = race_calendar(frame)
    for fold in folds:
        (test_race,) = fold.test_races
        test_date = _dates(frame, [test_race]).iloc[0]
        assert _dates(frame, fold.train_races).max() < test_date
        expected = calendar[(calendar["date"] < test_date) & (calendar["year"] >= 2014)]["raceId"]
        assert set(fold.train_races) == set(expected)


def test_walk_forward_folds_expand_and_cover_the_races(frame):
    calendar = race_calendar(frame)
    races = calendar[calendar["year"] == 2023]
    folds = walk_forward_folds(frame, races, 4, 2014)
    assert sorted(r for f in folds for r in f.test_races) == sorted(races["raceId"])
    sizes = [len(f.train_races) for f in folds]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    for fold in folds:
        assert _dates(frame, fold.train_races).max() < _dates(frame, fold.test_races).min()


def test_a_season_without_races_is_a_config_error(frame):
    with pytest.raises(ConfigError, match="--season: no races for 2031"):
        backtest_folds(frame, 2031, 2014)


def _race(race_id, probs, winner, podium):
    n = len(probs)
    order = [winner, *[d for d in podium if d != winner], *[d for d in range(n) if d not in podium]]
    position = {d: i + 1 for i, d in enumerate(order)}
    return pd.DataFrame({"raceId": race_id, "driverId": range(n), "prob": probs, "score": probs,
                         "won": [int(d == winner) for d in range(n)],
                         "position_order": [position[d] for d in range(n)]})


def test_race_winner_metrics_by_hand():
    pred = pd.concat([_race(1, [0.7, 0.2, 0.1, 0.0], 0, [0, 1, 2]), _race(2, [0.5, 0.25, 0.25, 0.0], 1, [1, 3, 2])])
    m = race_winner_metrics(pred)
    assert m["top1_accuracy"] == 0.5
    assert m["log_loss"] == pytest.approx((-np.log(0.7) - np.log(0.25)) / 2)
    brier_1 = 0.3**2 + 0.2**2 + 0.1**2
    brier_2 = 0.5**2 + 0.75**2 + 0.25**2
    assert m["brier"] == pytest.approx((brier_1 + brier_2) / 2)
    assert m["podium_hit_rate"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_quali_and_pit_metrics_by_hand():
    perfect = pd.DataFrame({"raceId": 1, "quali_position": [1, 2, 3, 4], "score": [4, 3, 2, 1]})
    m = quali_order_metrics(perfect)
    assert m["spearman"] == pytest.approx(1.0) and m["ndcg_at_10"] == pytest.approx(1.0) and m["pole_accuracy"] == 1
    reversed_ = perfect.assign(score=[1, 2, 3, 4])
    assert quali_order_metrics(reversed_)["spearman"] == pytest.approx(-1.0)
    pit = pd.DataFrame({"raceId": [1, 1, 2], "first_stop_lap": [10, 20, np.nan], "score": [12, 25, 9]})
    m = pit_window_metrics(pit)
    assert m["mae_laps"] == pytest.approx(3.5) and m["within_3_laps"] == pytest.approx(0.5)


def test_backtest_2024_baselines_match_the_known_figures(data_dir, tmp_path):
    """Pole sitter won 12 of 24 races in 2024; the card lands with its plots."""
    ev, summary = backtest("race_winner", "logistic_regression", 2024, data_dir, validate=False,
                           card_dir=tmp_path / "card")
    assert summary["races"] == 24
    assert summary["baselines"]["pole_sitter"]["top1_accuracy"] == pytest.approx(0.5)
    assert "log_loss" in summary["baselines"]["grid_only"]
    assert 0 < summary["metrics"]["log_loss"] < 5
    card = (tmp_path / "card" / "card.md").read_text()
    assert "pole_sitter" in card and "Abu Dhabi" in card
    for plot in ("calibration.png", "feature_importance.png", "per_race.png"):
        assert (tmp_path / "card" / plot).stat().st_size > 1000


def test_backtest_pit_window_circuit_median_baseline(data_dir):
    _, summary = backtest("pit_window", "logistic_regression", 2023, data_dir, validate=False)
    base = summary["baselines"]["circuit_median"]
    assert 2 < base["mae_laps"] < 15 and 0 < base["within_3_laps"] < 1
    assert summary["metrics"]["n_races"] == 22
