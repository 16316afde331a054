"""`pitwall-train train` / `backtest` through the real CLI entry point, on the real data."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from pitwall_trainer.cli import main
from pitwall_trainer.errors import ConfigError
from pitwall_trainer.models.factory import predict

FAST = '{"n_estimators": 20}'


@pytest.fixture(autouse=True)
def _env(data_dir, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PITWALL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PITWALL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "pitwall-cache"))


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_no_mlflow_writes_model_card_and_json(tmp_path, capsys):
    output = tmp_path / "models" / "race_winner_v1.pkl"
    code = main(["train", "--model", "race_winner", "--seasons", "2023,2024", "--algorithm", "xgboost",
                 "--params", FAST, "--folds", "2", "--output", str(output), "--no-mlflow", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = _last_json(out)
    assert result["model"] == "race_winner" and result["mlflow"] is None and result["promotion"] is None
    assert result["metrics"]["n_races"] == 24  # the last chosen season, walk-forward
    assert set(result["baselines"]) == {"pole_sitter", "championship_leader", "grid_only"}
    assert result["baselines"]["pole_sitter"]["top1_accuracy"] == pytest.approx(0.5)
    assert result["primary_metric"] == "top1_accuracy" and result["params"]["n_estimators"] == 20
    bundle = pickle.loads(output.read_bytes())
    fitted = bundle["fitted"]
    assert fitted.train_end_date.startswith("2024-12")
    card = output.with_name("race_winner_v1_card")
    assert (card / "card.md").is_file() and (card / "calibration.png").is_file()
    assert result["card_dir"] == str(card)
    # the saved model applies to fresh feature rows
    from pitwall_trainer.features import load_feature_matrix

    rows = load_feature_matrix(validate=False).frame.query("year == 2024 and round == 1")
    assert predict(fitted, rows)["prob"].sum() == pytest.approx(1.0)


def test_train_holdout_for_pit_window(tmp_path, capsys):
    code = main(["train", "--model", "pit_window", "--seasons", "2024", "--algorithm", "random_forest",
                 "--params", FAST, "--folds", "0", "--holdout-races", "5", "--no-mlflow", "--json"])
    result = _last_json(capsys.readouterr().out)
    assert code == 0 and result["metrics"]["n_races"] == 5
    assert result["primary_metric"] == "mae_laps" and result["primary_mode"] == "min"
    assert "circuit_median" in result["baselines"]


def test_backtest_json_with_the_default_algorithm_and_a_per_season_card(tmp_path, capsys):
    card = tmp_path / "card"
    code = main(["backtest", "--model", "quali_order", "--season", "2024", "--card-dir", str(card), "--json"])
    result = _last_json(capsys.readouterr().out)
    assert code == 0 and result["races"] == 24 and result["algorithm"] == "logistic_regression"
    assert {"spearman", "ndcg_at_10", "pole_accuracy"} <= set(result["metrics"])
    assert "previous_race" in result["baselines"]
    import pandas as pd

    seasons = pd.read_csv(card / "per_season.csv")
    assert seasons["season"].tolist() == [2024] and seasons["races"].tolist() == [24]
    row = seasons.iloc[0]
    assert row["model.ndcg_at_10"] == pytest.approx(result["metrics"]["ndcg_at_10"])
    assert row["previous_race.spearman"] == pytest.approx(result["baselines"]["previous_race"]["spearman"])
    worse = [f"previous_race {k}" for k in ("ndcg_at_10", "spearman")
             if row[f"model.{k}"] < row[f"previous_race.{k}"]]
    assert row["verdict"] == ("worse than " + ", ".join(worse) if worse else "beats every baseline")
    text = (card / "card.md").read_text()
    assert "Per season: model vs each baseline" in text
    assert f"| 2024 | 24 | {row['model.ndcg_at_10']:.3f} | {row['model.spearman']:.3f} |" in text  # a markdown row


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["train", "--model", "race_loser", "--seasons", "2024", "--no-mlflow"], "--model"),
        (["train", "--model", "race_winner", "--seasons", "2030", "--no-mlflow"], "--seasons"),
        (["train", "--model", "race_winner", "--seasons", "2024", "--algorithm", "svm", "--no-mlflow"], "--algorithm"),
        (["train", "--model", "race_winner", "--seasons", "2024", "--params", "{bad", "--no-mlflow"], "--params"),
        (["train", "--model", "race_winner", "--seasons", "2024", "--params", '{"max_dept": 2}', "--no-mlflow"],
         "max_dept"),
        (["train", "--model", "race_winner", "--seasons", "2024", "--promotion-policy", "Sometimes"],
         "--promotion-policy"),
        (["backtest", "--model", "race_winner", "--season", "2031"], "--season"),
    ],
)
def test_bad_input_exits_2_naming_the_field(argv, field, capsys):
    assert main(argv) == 2
    assert field in capsys.readouterr().err


def test_bad_seasons_syntax_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "race_winner", "--seasons", "20x4", "--no-mlflow"])
    assert exit_info.value.code == 2
    assert "--seasons" in capsys.readouterr().err


def test_unwritable_output_is_refused_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    code = main(["train", "--model", "race_winner", "--seasons", "2024", "--no-mlflow",
                 "--output", str(blocker / "model.pkl"), "--data-dir", str(tmp_path / "no-data")])
    assert code == 2  # refused on --output before the data is even looked at


def test_down_mlflow_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--model", "race_winner", "--seasons", "2024", "--tracking-uri", "http://127.0.0.1:9",
                 "--data-dir", str(tmp_path / "no-data")])
    assert code == 1
    assert "http://127.0.0.1:9" in capsys.readouterr().err


def test_a_season_not_yet_in_the_data_is_skipped_only_after_the_last_one() -> None:
    """A RetrainPolicy template lists the season under way; a gap in the past is still an error."""
    import pandas as pd
    from pitwall_trainer.training import _check_seasons

    frame = pd.DataFrame({"year": [2022, 2023, 2024]})
    assert _check_seasons(frame, [2023, 2024, 2025]) == [2023, 2024]
    with pytest.raises(ConfigError, match="2021"):
        _check_seasons(frame, [2021, 2024])
    with pytest.raises(ConfigError, match="2030"):
        _check_seasons(frame, [2030])
