"""Real small tunings: Optuna (SQLite, and two workers sharing a PostgreSQL study) and Ray Tune
attached to a separately started Ray head. Real data (two seasons), real MLflow (SQLite).

Kept small so all of it runs in about three minutes on two cores: race_winner on 2022 (2023 is
the holdout), two folds, 15-60 boosting rounds, rungs at 5/15/45 rounds. log_loss is the
objective because a continuous metric separates trials at every rung.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import optuna
import psutil
import pytest
from mlflow.tracking import MlflowClient
from pitwall_trainer.cli.tune import add_tune_arguments, best_params_from_args, tune_from_args
from pitwall_trainer.tuning import MlflowSettings, TuneResult, tune
from pitwall_trainer.tuning.optuna_engine import make_storage
from pitwall_trainer.tuning.space import contains, parse_space

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPACE = {
    "n_estimators": {"type": "int", "low": 15, "high": 60},
    "max_depth": {"type": "int", "low": 2, "high": 5},
    "learning_rate": {"type": "logfloat", "low": 0.02, "high": 0.3},
}
SCHEDULER = {"gracePeriod": 5, "reductionFactor": 3}
SEASONS = [2022, 2023]
SAMPLES = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def warm_features(data_dir: Path) -> Path:
    """Compute the feature cache once, so workers and trials start from it."""
    from pitwall_trainer.features import load_feature_matrix

    load_feature_matrix(data_dir)
    return data_dir


def _check_search(result: TuneResult, tracking_uri: str) -> None:
    """Early stopping happened, the best lies in the space, MLflow holds parent and trial runs."""
    assert result.trials == SAMPLES == result.completed + result.pruned + result.failed
    assert result.failed == 0
    assert result.pruned >= 1, [(r.number, r.state, r.step) for r in result.records]
    stopped = [r for r in result.records if r.state == "PRUNED"]
    assert all(r.step < r.params["n_estimators"] for r in stopped)  # stopped before its last round
    assert contains(parse_space(SPACE, "race_winner", "xgboost"), result.best_params)
    assert result.best_metric == min(r.value for r in result.records if r.state == "COMPLETE")
    assert result.holdout_season == 2023 and result.folds == ["fold 1/2", "fold 2/2"]

    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pitwall.kind"] == "tuning"
    assert parent.data.metrics["pruned"] == result.pruned
    assert parent.data.metrics["best.log_loss"] == pytest.approx(result.best_metric)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == SAMPLES
    states = sorted(c.data.tags["pitwall.trial_state"] for c in children)
    assert states.count("PRUNED") == result.pruned
    one = next(c for c in children if c.data.tags["pitwall.trial_state"] == "COMPLETE")
    steps = sorted(m.step for m in client.get_metric_history(one.info.run_id, "log_loss"))
    assert steps[:2] == [5, 15] and steps[-1] == int(one.data.params["n_estimators"])  # per boosting round
    assert set(SPACE) <= set(one.data.params)


def test_optuna_engine_prunes_and_tracks(warm_features: Path, tracking_uri: str, tmp_path: Path):
    """The `train --tune` helpers drive a real Optuna search (SQLite storage in the run folder)."""
    space_file = tmp_path / "tuning.yaml"
    space_file.write_text(json.dumps({"searchSpace": SPACE, "scheduler": SCHEDULER, "metric": "log_loss"}))
    parser = argparse.ArgumentParser()
    add_tune_arguments(parser)
    argv = ["--engine", "optuna", "--num-samples", str(SAMPLES), "--max-concurrent", "2",
            "--search-space", str(space_file), "--tune-folds", "2", "--tune-seed", "7",
            "--tune-dir", str(tmp_path / "run")]
    assert best_params_from_args(parser.parse_args(argv), "race_winner", "xgboost", SEASONS, str(warm_features)) is None
    args = parser.parse_args(["--tune", *argv])
    args.tracking_uri = tracking_uri
    updates = []
    result = tune_from_args(args, "race_winner", "xgboost", SEASONS, str(warm_features), [updates.append])
    _check_search(result, tracking_uri)
    assert result.storage == f"sqlite:///{(tmp_path / 'run' / 'optuna.db').resolve()}"
    assert [u.done for u in updates] == list(range(1, SAMPLES + 1))  # progress: trials done / total
    assert updates[-1].total == SAMPLES and updates[-1].best_metric == pytest.approx(result.best_metric)
    assert updates[0].eta_seconds is not None


@pytest.fixture
def ray_head(tmp_path: Path):
    """`ray start --head` in its own session (auth off, temp dir outside $HOME); killed by its group."""
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip(f"the ray CLI is not installed next to {sys.executable}")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="pwray", dir="/tmp")  # Unix socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp}",
         "--include-dashboard=false", "--disable-usage-stats", f"--node-manager-port={_free_port()}",
         f"--object-manager-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
         f"--dashboard-agent-grpc-port={_free_port()}", f"--metrics-export-port={_free_port()}",
         f"--runtime-env-agent-port={_free_port()}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                             capture_output=True).returncode != 0:
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray head did not start: {(tmp_path / 'ray-head.log').read_text()[-2000:]}")
            time.sleep(1)
        yield address
    finally:
        with_temp = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops what it started
            try:
                head.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait(10)
        for proc in with_temp:  # our head's processes only (they carry its temp dir)
            if proc.is_running():
                proc.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_on_a_running_cluster(ray_head: str, warm_features: Path, tracking_uri: str, tmp_path: Path):
    """OptunaSearch + ASHA on a head started separately, reached by its address."""
    result = tune(
        "race_winner", "xgboost", SEASONS, str(warm_features), engine="ray", num_samples=SAMPLES,
        max_concurrent=2, search_space=SPACE, scheduler=SCHEDULER, ray_address=ray_head,
        mlflow=MlflowSettings(tracking_uri), metric="log_loss", n_folds=2, seed=7, run_dir=tmp_path / "run",
        show_progress=False,
    )
    assert result.ray_address == ray_head
    _check_search(result, tracking_uri)
    assert (tmp_path / "run" / "ray").is_dir()  # results under the run folder, not ~/ray_results


def _postgres_bin() -> Path | None:
    for folder in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    pg_config = shutil.which("pg_config")
    if pg_config:
        folder = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server (initdb + pg_ctl on a free port); as `postgres` when run as root."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="pitwall-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # the server refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = [runuser, "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    started = subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
         "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        capture_output=True, text=True,
    )
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {started.stderr}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_optuna_workers_share_one_postgres_study(postgres_url: str, warm_features: Path, tmp_path: Path):
    """Two `pitwall-train tune` processes on one study: together they run the study's trials."""
    space_file = tmp_path / "space.yaml"
    space_file.write_text(json.dumps({"searchSpace": SPACE, "scheduler": SCHEDULER, "metric": "log_loss"}))
    command = [sys.executable, "-m", "pitwall_trainer", "tune", "--model", "race_winner", "--algorithm", "xgboost", "--engine", "optuna",
               "--num-samples", str(SAMPLES), "--search-space", str(space_file), "--storage", postgres_url,
               "--study-name", "shared", "--seasons", "2022,2023", "--data-dir", str(warm_features),
               "--tune-folds", "2", "--no-tune-tracking", "--json"]
    workers = [
        subprocess.Popen([*command, "--tune-dir", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(r["records"] for r in results)  # both workers ran trials of the one study
    numbers = [rec["number"] for r in results for rec in r["records"]]
    assert len(numbers) == len(set(numbers))  # no trial ran twice
    study = optuna.load_study(study_name="shared", storage=make_storage(postgres_url))
    finished = [t for t in study.trials if t.state.is_finished()]
    assert SAMPLES <= len(finished) <= SAMPLES + 1  # workers stop at numSamples (one may be in flight)
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in finished)
    assert results[0]["best_metric"] is not None and "postgresql://postgres@" in results[0]["storage"]
