"""Optuna engine: a TPE study with a successive-halving pruner fed every reported round.

Concurrency is processes on one storage, never threads (scoring is pandas, threads would queue
on the GIL): `max_concurrent` K starts K-1 spawned helpers beside this process, and a shared
counter makes them start exactly `num_samples` trials. Storage is a URL: SQLite (the default,
in the run folder) for one machine; PostgreSQL when worker pods share one study: each runs this
same search with the same `--storage` and `--study-name`, and `MaxTrialsCallback` stops them all
once the study holds `num_samples` finished trials (one more per other pod can be in flight).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState

from pitwall_trainer.errors import ConfigError, PitwallError
from pitwall_trainer.tuning.objective import TuningData, final_params, run_trial
from pitwall_trainer.tuning.results import COMPLETE, FAILED, PRUNED, Bookkeeper, TrialRecord
from pitwall_trainer.tuning.space import Scheduler, SearchSpace, suggest

log = logging.getLogger(__name__)

STATES = {TrialState.COMPLETE: COMPLETE, TrialState.PRUNED: PRUNED, TrialState.FAIL: FAILED}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = "pitwall.worker"  # user attribute: which search (process group) ran the trial
ERROR = "pitwall.error"  # user attribute of a failed trial: [type, message, is a PitwallError]
POLL_SECONDS = 1.0
SCHEMA_ATTEMPTS = 5


@dataclass
class OptunaOutcome:
    best_params: dict[str, Any]
    best_value: float | None
    counts: dict[str, int]  # of the whole study (all workers sharing it)
    study_name: str
    storage: str


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; the trainer ships psycopg2: name the driver."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and sep:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with settings that suit several writers (lock timeout, stale connections, heartbeats)."""
    url = sqlalchemy_url(url)
    if url.startswith("sqlite:"):
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"pool_pre_ping": True}
    else:
        raise ConfigError(f"--storage: {url!r} is not a sqlite:///, postgresql:// or mysql:// URL")
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            # A worker that dies mid-trial stops beating; its trial is failed after the grace period.
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=30,
                                                     grace_period=120)
            break
        except ImportError as error:
            raise ConfigError(f"--storage: the driver for {url.split(':', 1)[0]} is not installed: {error}") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers starting together on an empty database race to create Optuna's schema
            # ("type studydirection already exists"): the loser retries and finds it there.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random())
    if url.startswith("sqlite:"):
        # Every report is a commit: WAL lets the search's processes read while one writes, and
        # no fsync per commit (a scratch study in the run folder; PostgreSQL is for durable ones).
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()
    return storage


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def make_pruner(scheduler: Scheduler) -> optuna.pruners.BasePruner:
    """Successive halving on the same rungs ASHA uses (grace * rf^k); FIFO prunes nothing."""
    if not scheduler.enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=scheduler.grace_period, reduction_factor=scheduler.reduction_factor
    )


def open_study(data: TuningData, scheduler: Scheduler, storage_url: str, study_name: str,
               seed: int | None) -> optuna.Study:
    """Create or join the study; a same-named study with the other direction is a ConfigError."""
    direction = "maximize" if data.mode == "max" else "minimize"
    try:
        study = optuna.create_study(
            storage=make_storage(storage_url),
            study_name=study_name,
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
            pruner=make_pruner(scheduler),
            direction=direction,
            load_if_exists=True,
        )
    except ValueError as error:
        raise ConfigError(f"--study-name: cannot use study {study_name!r}: {error}") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"--study-name: study {study_name!r} already exists with direction {study.direction.name.lower()}"
            f", but {data.metric} wants {direction}"
        )
    return study


def optimize(study: optuna.Study, data: TuningData, space: SearchSpace, scheduler: Scheduler,
             num_samples: int, token: str, slots: Any = None) -> None:
    """One worker's loop: trials until the study holds `num_samples` finished ones.

    `slots` (a shared counter) makes the processes of one search start exactly `num_samples`
    trials between them: each claims a slot before every trial.
    """

    def claim() -> bool:
        if slots is None:
            return True
        with slots.get_lock():
            if slots.value >= num_samples:
                return False
            slots.value += 1
            return True

    def next_slot(study: optuna.Study, _trial: Any) -> None:
        if not claim():
            study.stop()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER, token)
        params = suggest(trial, space)

        def report(step: int, value: float, final: bool) -> bool:
            if value is not None and not math.isnan(value):
                trial.report(value, step)
            return not final and trial.should_prune()

        try:
            outcome = run_trial(data, params, report, scheduler)
        except Exception as error:  # the driver reads it back when no trial completes
            trial.set_user_attr(ERROR, [type(error).__name__, str(error)[:2000], isinstance(error, PitwallError)])
            raise
        if outcome.stopped:
            raise optuna.TrialPruned(f"stopped at step {outcome.step}")
        return outcome.value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not claim():
        return
    study.optimize(
        objective, n_trials=num_samples, catch=(Exception,), gc_after_trial=False,
        callbacks=[next_slot, optuna.study.MaxTrialsCallback(num_samples, states=FINISHED)],
    )


def _worker(data: TuningData, space: SearchSpace, scheduler: Scheduler, num_samples: int,
            storage_url: str, study_name: str, seed: int | None, token: str, slots: Any) -> None:
    """A helper process of this search (spawned: a clean interpreter, no inherited threads)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(data, scheduler, storage_url, study_name, seed)
    optimize(study, data, space, scheduler, num_samples, token, slots)


def run_optuna(
    data: TuningData,
    space: SearchSpace,
    scheduler: Scheduler,
    num_samples: int,
    max_concurrent: int,
    storage_url: str,
    study_name: str,
    keeper: Bookkeeper,
    seed: int | None = None,
) -> OptunaOutcome:
    """Run (or join) the study until it holds `num_samples` finished trials.

    Trials run in `max_concurrent` spawned worker processes on the same storage (threads would
    serialise on the GIL: scoring is pandas). This process polls the study and reports its
    workers' trials, marked with its token, to the bookkeeper (progress, MLflow); other pods
    sharing the study report their own.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(data, scheduler, storage_url, study_name, seed)
    token = uuid.uuid4().hex
    reported: set[int] = set()

    def sweep(study: optuna.Study) -> None:
        """Report every newly finished trial of this search's workers."""
        for trial in study.get_trials(deepcopy=False, states=tuple(STATES)):
            if trial.number in reported or trial.user_attrs.get(WORKER) != token:
                continue
            reported.add(trial.number)
            history = sorted(trial.intermediate_values.items())
            value = trial.value if trial.state == TrialState.COMPLETE else (history[-1][1] if history else None)
            step = history[-1][0] if history else 0
            keeper.finished(TrialRecord(trial.number, dict(trial.params), value, STATES[trial.state],
                                        step, history))

    context = multiprocessing.get_context("spawn")
    slots = context.Value("i", 0)
    helpers = [
        context.Process(target=_worker, name=f"optuna-worker-{i}", daemon=True,
                        args=(data, space, scheduler, num_samples, storage_url, study_name,
                              None if seed is None else seed + i, token, slots))
        for i in range(max(1, max_concurrent))
    ]
    # Trials run in spawned workers with OpenMP pinned to the trial's CPUs: this process has
    # loaded XGBoost already (OpenMP reads the variable once), and spinning OpenMP threads of
    # concurrent trials on the same cores made trials 2-3x slower (measured: bench/tune.py).
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(max(1, data.n_jobs))
    try:
        for helper in helpers:
            helper.start()
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    try:
        while alive := [helper.sentinel for helper in helpers if helper.is_alive()]:
            sweep(study)
            multiprocessing.connection.wait(alive, timeout=POLL_SECONDS)
    finally:
        for helper in helpers:
            if helper.is_alive():
                helper.terminate()
                helper.join(10)
    sweep(study)
    if any(helper.exitcode for helper in helpers):
        log.warning("optuna worker exit codes: %s", [helper.exitcode for helper in helpers])
    trials = study.get_trials(deepcopy=False)
    counts = {
        "trials": sum(t.state in STATES for t in trials),
        "completed": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
    }
    if not counts["completed"]:
        failure = next((t.user_attrs[ERROR] for t in trials if ERROR in t.user_attrs), None)
        if failure and failure[2]:
            raise ConfigError(failure[1])  # a bad value in the space fails every trial: not retryable
        detail = f": {failure[0]}: {failure[1]}" if failure else ""
        raise RuntimeError(f"no trial of study {study_name!r} completed ({counts}){detail}")
    best = study.best_trial
    return OptunaOutcome(final_params(data, dict(best.params), scheduler), best.value, counts, study_name, storage_url)
