"""The headline: with the default algorithm and settings, each model beats its baselines per season.

Each race of a season is predicted by a model trained on every race before it (`pitwall-train
backtest`, no --algorithm); the baselines are scored on the same races. The goal, per season:
race_winner top-1 at least the pole sitter's and grid-only's and log loss below grid-only's;
quali_order NDCG@10 and Spearman above the previous race's order; pit_window MAE below and the
±3-lap share above the circuit median. Seasons where bench/race_winner_selection.md records that
the goal is missed are strict xfails: if a change wins one, the test says so and the notes must be
updated. A change to features or defaults that loses a won season fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pitwall_trainer.cli import main

pytestmark = pytest.mark.slow

# Seasons the default misses (bench/race_winner_selection.md gives the distance and the reason).
MISSED = {("race_winner", 2024), ("pit_window", 2020), ("pit_window", 2021), ("pit_window", 2023),
          ("pit_window", 2024)}
CASES = [
    pytest.param(model, season, marks=pytest.mark.xfail(strict=True, reason="recorded miss"))
    if (model, season) in MISSED else (model, season)
    for model in ("race_winner", "quali_order", "pit_window") for season in range(2019, 2025)
]


def _backtest(model: str, season: int, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(["backtest", "--model", model, "--season", str(season), "--data-dir", str(data_dir), "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(("model", "season"), CASES)
def test_default_model_beats_its_baselines(model: str, season: int, data_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    summary = _backtest(model, season, data_dir, capsys)
    m, b = summary["metrics"], summary["baselines"]
    assert summary["algorithm"] == "logistic_regression" and m["n_races"] == summary["races"] > 15
    if model == "race_winner":
        assert m["top1_accuracy"] >= b["pole_sitter"]["top1_accuracy"]
        assert m["top1_accuracy"] >= b["grid_only"]["top1_accuracy"]
        assert m["log_loss"] < b["grid_only"]["log_loss"]
    elif model == "quali_order":
        assert m["ndcg_at_10"] > b["previous_race"]["ndcg_at_10"]
        assert m["spearman"] > b["previous_race"]["spearman"]
    else:
        assert m["mae_laps"] < b["circuit_median"]["mae_laps"]
        assert m["within_3_laps"] > b["circuit_median"]["within_3_laps"]
