"""What a search produces, and the one place both engines report finished trials to.

Each engine turns its own trial events into `TrialRecord`s and hands them to `Bookkeeper`,
which keeps the best so far, drives the progress bar / TrainingRun status, and logs the
trial's nested MLflow run; so Ray and Optuna report identically.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pitwall_trainer.progress import Progress, phase
from pitwall_trainer.tuning.tracking import TrialLogger

COMPLETE, PRUNED, FAILED = "COMPLETE", "PRUNED", "FAILED"


@dataclass
class TrialRecord:
    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # COMPLETE | PRUNED | FAILED
    step: int  # last round (or fold) reported
    history: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class TuneResult:
    engine: str
    model: str
    algorithm: str
    metric: str
    mode: str
    best_params: dict[str, Any]
    best_metric: float | None
    trials: int  # finished trials seen by this process (Optuna: of the whole shared study)
    completed: int
    pruned: int  # stopped early by ASHA or the pruner
    failed: int
    seconds: float
    search_space: dict[str, Any]
    scheduler: dict[str, Any]
    seasons: list[int]
    holdout_season: int
    folds: list[str]
    run_dir: str
    data_hash: str = ""
    study_name: str | None = None
    storage: str | None = None
    ray_address: str | None = None  # the cluster joined (None: a local one started for the search)
    mlflow_run_id: str | None = None
    records: list[TrialRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part (trial list without histories)."""
        out = asdict(self)
        out["records"] = [
            {k: v for k, v in asdict(r).items() if k != "history"} for r in self.records
        ]
        return out


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class Bookkeeper:
    """Best-so-far, progress and MLflow for finished trials (thread-safe: Optuna runs trials on threads)."""

    def __init__(self, mode: str, metric: str, progress: Progress, logger: TrialLogger | None):
        self.mode, self.metric, self.progress, self.logger = mode, metric, progress, logger
        progress.phase, progress.metric_name = "Tuning", metric  # each finished trial is a step of it
        phase("Tuning", total=progress.total, metric_name=metric)
        self.records: list[TrialRecord] = []
        self.best: TrialRecord | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def _better(self, record: TrialRecord) -> bool:
        if record.state != COMPLETE or not _finite(record.value):
            return False
        if self.best is None:
            return True
        return record.value > self.best.value if self.mode == "max" else record.value < self.best.value

    def finished(self, record: TrialRecord, advance: int = 1) -> None:
        with self._lock:
            self.records.append(record)
            if self._better(record):
                self.best = record
            best = self.best.value if self.best else None
            note = {COMPLETE: "", PRUNED: " (stopped early)", FAILED: " (failed)"}[record.state]
            self.progress.advance(
                advance,
                message=f"trial {record.number}{note}",
                metric=record.value if _finite(record.value) else None,
                best=best,
            )
        if self.logger is not None:
            self.logger.log_trial(record.number, record.params, record.value, record.state,
                                  record.history, self.metric)

    def counts(self) -> dict[str, int]:
        states = [r.state for r in self.records]
        return {"trials": len(states), "completed": states.count(COMPLETE),
                "pruned": states.count(PRUNED), "failed": states.count(FAILED)}

    def elapsed(self) -> float:
        return time.monotonic() - self.started
