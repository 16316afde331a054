"""The headline figure: race_winner's 2024 walk-forward backtest beats the pole sitter and grid-only.

Each 2024 race is predicted by a model trained on every race before it; the baselines are scored on
the same races. A change to features or defaults that loses the headline fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pitwall_trainer.cli import main

pytestmark = pytest.mark.slow


def test_race_winner_xgboost_beats_pole_sitter_and_grid_only_on_2024(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["backtest", "--model", "race_winner", "--season", "2024", "--algorithm", "xgboost",
                 "--data-dir", str(data_dir), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics, baselines = summary["metrics"], summary["baselines"]
    assert metrics["n_races"] == 24
    assert baselines["pole_sitter"]["top1_accuracy"] == pytest.approx(0.5)  # 12/24, DESIGN.md
    assert metrics["top1_accuracy"] > baselines["pole_sitter"]["top1_accuracy"]
    assert metrics["log_loss"] < baselines["grid_only"]["log_loss"]
