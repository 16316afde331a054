"""`pitwall-train monitor` on the real data: a champion trained through mid-2024 in a local SQLite MLflow.

The champion is a real XGBoost race_winner model registered and promoted with the project's own
registry code; the data is a copy of the shared Ergast tables, truncated by date in tmp_path, so
"a race arrives" is a file change as it would be on the data claim.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pitwall_trainer.data.loader import data_fingerprint
from pitwall_trainer.evaluation.runner import fit_evaluate
from pitwall_trainer.evaluation.splits import race_calendar, temporal_holdout
from pitwall_trainer.features import load_feature_matrix
from pitwall_trainer.models.factory import fit_model, get_spec
from pitwall_trainer.monitoring.signals import compute_signals, load_champion, monitor
from pitwall_trainer.registry import champion_info, log_and_register, promote
from pitwall_trainer.result import TrainResult

from tests.ergast_server import ErgastData, ErgastServer

MID_2024 = "2024-06-30"  # after the Austrian GP (round 11): 13 races of 2024 follow


def races_through(data_dir: Path, cutoff: str) -> set[int]:
    with (data_dir / "races.csv").open(newline="") as fh:
        return {int(r["raceId"]) for r in csv.DictReader(fh) if r["date"] <= cutoff}


def truncate_data(src: Path, dst: Path, cutoff: str) -> Path:
    """Copy the Ergast tables keeping only races on or before `cutoff`, line for line (bytes unchanged)."""
    keep = races_through(src, cutoff)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.csv")):
        lines = path.read_text().splitlines(keepends=True)
        header = next(csv.reader([lines[0]]))
        if "raceId" not in header:
            shutil.copyfile(path, dst / path.name)
            continue
        col = header.index("raceId")
        kept = [line for line in lines[1:] if int(next(csv.reader([line]))[col]) in keep]
        (dst / path.name).write_text(lines[0] + "".join(kept))
    return dst


def add_races(src: Path, dst: Path, cutoff: str) -> None:
    """Bring the truncated copy forward to `cutoff`: the later races' rows appear, as after a fetch."""
    truncate_data(src, dst, cutoff)


def train_champion(data_dir: Path, tracking_uri: str, cutoff: str, algorithm: str = "xgboost",
                   registered_name: str = "pitwall-race_winner") -> dict[str, Any]:
    """Train race_winner on 2022..cutoff, score the last 6 races before it, register and promote."""
    frame = load_feature_matrix(data_dir, use_cache=False).frame
    frame = frame[(frame["year"] >= 2014) & (frame["date"] <= pd.Timestamp(cutoff))]
    calendar = race_calendar(frame)
    holdout = temporal_holdout(frame, calendar.tail(6), 2014)
    outcome = fit_evaluate("race_winner", algorithm, None, frame, holdout)
    fitted = fit_model("race_winner", algorithm, frame[frame["year"] >= 2022])
    spec = get_spec("race_winner")
    result = TrainResult(
        model="race_winner", algorithm=algorithm, estimator=fitted.estimator, feature_names=fitted.feature_names,
        params=fitted.params, metrics=outcome.metrics, baselines={}, primary_metric=spec.primary_metric,
        primary_mode=spec.primary_mode, data_hash=data_fingerprint(data_dir), seasons=[2022, 2023, 2024],
        train_end_date=fitted.train_end_date, input_example=frame[fitted.feature_names].head(3),
    )
    record = log_and_register(result, tracking_uri, registered_model_name=registered_name)
    decision = promote(record, result, tracking_uri=tracking_uri)
    return {"record": record, "decision": decision, "metrics": outcome.metrics, "train_end_date": fitted.train_end_date}


@pytest.fixture(scope="module")
def world(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A champion trained through mid-2024 (SQLite MLflow) and a data copy cut at the same date."""
    root = tmp_path_factory.mktemp("monitor")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PITWALL_CACHE_DIR", str(root / "cache"))  # feature cache shared by the tests, not ~/.cache
        uri = f"sqlite:///{root / 'mlflow.db'}"
        data = truncate_data(data_dir, root / "data", MID_2024)
        champion = train_champion(data, uri, MID_2024)
        yield {"root": root, "uri": uri, "data": data, "champion": champion, "full": data_dir}


def test_champion_was_registered_with_its_training_end(world: dict[str, Any]) -> None:
    info = champion_info("race_winner", tracking_uri=world["uri"])
    assert info is not None and info["version"] == "1"
    assert info["train_end_date"] == world["champion"]["train_end_date"] == "2024-06-30"


def test_no_new_race_fires_nothing(world: dict[str, Any]) -> None:
    signals = monitor("race_winner", world["data"], tracking_uri=world["uri"])
    assert signals["championVersion"] == "1"
    assert signals["latestRaceDate"] == "2024-06-30" == signals["championTrainEndDate"]
    assert signals["newRaces"] == 0 and signals["newSamples"] == 0
    assert "recentAccuracy" not in signals  # no race after training yet
    assert "driftScore" not in signals  # too few recent rows to score
    assert signals["baselineAccuracy"] == pytest.approx(world["champion"]["metrics"]["top1_accuracy"])
    assert signals["fired"] == []


def test_adding_races_fires_new_race_and_new_data(world: dict[str, Any], tmp_path: Path) -> None:
    data = truncate_data(world["full"], tmp_path / "data", MID_2024)
    add_races(world["full"], data, "2024-07-07")  # British GP: one race, 20 entries
    one = monitor("race_winner", data, tracking_uri=world["uri"])
    assert one["latestRaceDate"] == "2024-07-07"
    assert one["newRaces"] == 1 and one["newSamples"] == 20
    assert [f["reason"] for f in one["fired"]] == ["AfterNewRace", "NewData"]
    below = monitor("race_winner", data, tracking_uri=world["uri"], triggers={"newData": {"minSamples": 21}})
    assert below["fired"] == []  # 20 samples < 21: only the configured trigger counts

    add_races(world["full"], data, "2024-12-31")  # the rest of the season
    full = monitor("race_winner", data, tracking_uri=world["uri"])
    assert full["newRaces"] == 13 and full["newSamples"] == 13 * 20
    # the champion's accuracy over the last 5 races of 2024, measured by predicting them
    assert 0.0 <= full["recentAccuracy"] <= 1.0
    assert full["detail"]["recentRaces"] == 5
    assert full["driftScore"] is not None and full["driftScore"] > 0
    assert set(full["detail"]["drift"]["features"]) >= {"quali_gap_pct", "drv_form_points_5"}


def test_performance_drift_compares_recent_with_baseline(world: dict[str, Any]) -> None:
    """The same figures fire or not depending only on the threshold (recent < threshold x baseline)."""
    frame = load_feature_matrix(world["full"]).frame
    info = champion_info("race_winner", tracking_uri=world["uri"])
    champ = load_champion("race_winner", info, world["uri"])
    assert champ is not None and champ.fitted is not None
    base = compute_signals("race_winner", frame, champ, {"performanceDrift": {"threshold": 0.9, "windowRaces": 5}})
    recent, baseline = base["recentAccuracy"], base["baselineAccuracy"]
    low = (recent / baseline) * 0.99  # just below the ratio: must not fire
    high = min(1.0, (recent / baseline) * 1.01 + 1e-6)  # just above: must fire
    quiet = compute_signals("race_winner", frame, champ, {"performanceDrift": {"threshold": low, "windowRaces": 5}})
    loud = compute_signals("race_winner", frame, champ, {"performanceDrift": {"threshold": high, "windowRaces": 5}})
    assert quiet["fired"] == []
    assert [f["reason"] for f in loud["fired"]] == ["PerformanceDrift"]
    # a longer window is a different measurement: 10 races instead of 5
    wide = compute_signals("race_winner", frame, champ, {"performanceDrift": {"threshold": 0.9, "windowRaces": 10}})
    assert wide["detail"]["recentRaces"] == 10


def test_no_champion_means_everything_is_new(world: dict[str, Any], tmp_path: Path) -> None:
    signals = monitor("race_winner", world["data"], tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    assert "championVersion" not in signals
    assert signals["newRaces"] > 200  # every race since 2014
    assert [f["reason"] for f in signals["fired"]] == ["AfterNewRace", "NewData"]


def _monitor_cli(world: dict[str, Any], data: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pitwall_trainer", "monitor", "--model", "race_winner", "--data-dir", str(data),
           "--tracking-uri", world["uri"], "--json", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_refresh_fetches_the_new_races(world: dict[str, Any], tmp_path: Path) -> None:
    """--refresh runs the real fetcher against a local Jolpica-format server holding the whole 2024 season."""
    data = truncate_data(world["full"], tmp_path / "data", MID_2024)
    with ErgastServer(ErgastData(world["full"])) as api:
        out = _monitor_cli(world, data, "--refresh", "--seasons", "2024", "--base-url", api.base_url)
    assert out["dataRefresh"]["succeeded"] is True, out["dataRefresh"]
    assert out["latestRaceDate"] == "2024-12-08" and out["newRaces"] == 13
    assert "AfterNewRace" in [f["reason"] for f in out["fired"]]
    assert races_through(data, "2024-12-31") == races_through(world["full"], "2024-12-31")


def test_cli_failed_refresh_keeps_the_data(world: dict[str, Any], tmp_path: Path) -> None:
    """An API answering 404: reported as failed, the folder unchanged byte for byte, signals still computed."""
    data = truncate_data(world["full"], tmp_path / "data", "2024-07-07")
    before = {p.name: p.read_bytes() for p in data.glob("*.csv")}
    with ErgastServer(ErgastData(world["full"])) as api:
        out = _monitor_cli(world, data, "--refresh", "--seasons", "2024", "--base-url", api.base_url + "/gone")
    assert out["dataRefresh"]["succeeded"] is False and "404" in out["dataRefresh"]["message"]
    assert out["newRaces"] == 1 and [f["reason"] for f in out["fired"]] == ["AfterNewRace", "NewData"]
    assert {p.name: p.read_bytes() for p in data.glob("*.csv")} == before


def test_cli_rejects_bad_triggers(world: dict[str, Any]) -> None:
    cmd = [sys.executable, "-m", "pitwall_trainer", "monitor", "--model", "race_winner", "--data-dir",
           str(world["data"]), "--tracking-uri", world["uri"], "--triggers", "[1, 2]"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 2 and "--triggers" in done.stderr


# --- the policy backtest (`pitwall-train backtest --retrain ...`) --------------------------------------


def test_weekly_policy_equals_the_per_race_backtest(world: dict[str, Any]) -> None:
    """Retraining after every race is exactly the walk-forward backtest: same folds, same accuracy."""
    from pitwall_trainer.evaluation.backtest import backtest
    from pitwall_trainer.monitoring.policy_backtest import run_policy_backtest

    weekly = run_policy_backtest("race_winner", 2024, "weekly", world["full"], first_year=2023)
    _, reference = backtest("race_winner", "xgboost", 2024, world["full"], first_year=2023, show_progress=False)
    assert weekly["races"] == 24 and weekly["retrains"] == 23 and weekly["trainings"] == 24
    assert weekly["accuracy"] == pytest.approx(reference["metrics"]["top1_accuracy"], abs=1e-12)
    assert weekly["metrics"]["log_loss"] == pytest.approx(reference["metrics"]["log_loss"], rel=1e-9)


def test_never_and_on_drift_policies(world: dict[str, Any]) -> None:
    from pitwall_trainer.errors import ConfigError
    from pitwall_trainer.monitoring.policy_backtest import run_policy_backtest

    never = run_policy_backtest("race_winner", 2024, "never", world["full"], first_year=2023)
    assert never["retrains"] == 0 and never["retrain_log"] == [] and never["races"] == 24
    # by hand: one model fitted on 2023 (everything before round 1), predicting all 24 races
    frame = load_feature_matrix(world["full"]).frame
    season = frame[frame["year"] == 2024]
    fitted = fit_model("race_winner", "xgboost", frame[(frame["year"] == 2023)])
    from pitwall_trainer.evaluation.metrics import model_metrics
    from pitwall_trainer.models.factory import predict

    by_hand = model_metrics("race_winner", season.join(predict(fitted, season)))["top1_accuracy"]
    assert never["accuracy"] == pytest.approx(by_hand, abs=1e-12)

    drift = run_policy_backtest("race_winner", 2024, "on-drift", world["full"], first_year=2023)
    assert 0 < drift["retrains"] < 23
    assert all(set(r["reasons"]) <= {"PerformanceDrift", "DataDrift"} for r in drift["retrain_log"])
    assert [r["before_round"] for r in drift["retrain_log"]] == sorted(r["before_round"] for r in drift["retrain_log"])
    with pytest.raises(ConfigError):
        run_policy_backtest("race_winner", 2024, "daily", world["full"])
