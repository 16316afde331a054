"""Pytest plugin: a real `mlflow server` on loopback, and small real TrainResults.

Load it with ``pytest_plugins = ["tests.plugins.mlflow_server"]`` (or ``-p tests.plugins.mlflow_server``).

- ``mlflow_server`` (session): starts ``mlflow server`` with one worker, job execution and
  telemetry off, a SQLite backend in a temporary folder and ``--artifacts-destination`` (so
  artifacts travel over HTTP as in the cluster); waits for ``/health``; yields the URI; stops
  the whole process group it started and checks that nothing is left.
- ``make_result``: builds a real, fitted TrainResult (XGBoost, sklearn, a pipeline holding
  XGBoost, or a project-style wrapper) with a pandas input example and a model card folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

STARTUP_TIMEOUT = 90.0
FEATURES = ["grid", "form", "team_strength", "home_track"]

# A 1x1 PNG: enough for MLflow to store and serve as an image artifact.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8ff3f0005fe02fe0def46b80000000049454e44ae426082"
)


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group, SIGKILL it if it lingers, then reap."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # workers of the group exit after their parent
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_mlflow_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """`mlflow server` on `host` (a folder of its own under `root`); yields its URI, stops it after.

    `port`: 0 picks a free one; a given port (and root) starts the same server again after a stop.
    """
    root.mkdir(parents=True, exist_ok=True)
    if not port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    uri = f"http://{host}:{port}"
    env = dict(
        os.environ,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host,
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _healthy(uri):
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not healthy after {STARTUP_TIMEOUT:.0f}s:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield uri
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a real MLflow tracking server with proxied artifacts, on loopback."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


def _fit_estimator(kind: str, X: Any, y: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    def xgb() -> XGBClassifier:
        return XGBClassifier(n_estimators=8, max_depth=2, learning_rate=0.3, n_jobs=1)

    if kind == "xgboost":
        return xgb().fit(X, y)
    if kind == "sklearn":
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    if kind == "xgb_pipeline":
        return make_pipeline(StandardScaler(), xgb()).fit(X, y)
    if kind == "wrapper":
        return WinProbabilityModel(xgb()).fit(X, y)
    raise ValueError(kind)


class WinProbabilityModel:
    """Stands in for a project wrapper: not an sklearn estimator, predicts a probability."""

    def __init__(self, inner: Any):
        self.inner = inner

    def fit(self, X: Any, y: Any) -> WinProbabilityModel:
        self.inner.fit(X, y)
        return self

    def predict(self, X: Any) -> Any:
        return self.inner.predict_proba(X)[:, 1]


@pytest.fixture
def make_result(tmp_path: Path) -> Callable[..., Any]:
    """Factory: ``make_result(kind="xgboost", metrics=..., model=..., mode=...)`` -> TrainResult."""
    import numpy as np
    import pandas as pd
    from pitwall_trainer.result import TrainResult

    counter = iter(range(1_000_000))

    def build(
        kind: str = "xgboost",
        metrics: dict[str, float] | None = None,
        model: str = "race_winner",
        primary_metric: str = "top1_accuracy",
        mode: str = "max",
        train_end_date: str = "2024-12-08",
    ) -> TrainResult:
        n = next(counter)
        rng = np.random.default_rng(n)
        X = pd.DataFrame(rng.normal(size=(80, len(FEATURES))), columns=FEATURES)
        y = (X["grid"] + 0.5 * rng.normal(size=80) < 0).astype(int)
        card = tmp_path / f"card-{n}"
        card.mkdir()
        (card / "card.md").write_text(f"# {model} model card\n\nA test model.\n")
        (card / "calibration.png").write_bytes(PNG_1X1)
        return TrainResult(
            model=model,
            algorithm={"sklearn": "logistic_regression"}.get(kind, "xgboost"),
            estimator=_fit_estimator(kind, X, y),
            feature_names=list(FEATURES),
            params={"kind": kind, "n_estimators": 8, "seasons_list": [2022, 2023]},
            metrics=metrics or {"top1_accuracy": 0.55, "log_loss": 0.3},
            baselines={"pole_sitter.top1_accuracy": 0.5, "championship_leader.top1_accuracy": 0.4},
            primary_metric=primary_metric,
            primary_mode=mode,
            data_hash=f"hash{n}",
            seasons=[2022, 2023, 2024],
            train_end_date=train_end_date,
            input_example=X.head(5),
            card_dir=card,
        )

    return build
