"""Ray Tune engine: `tune.Tuner` with OptunaSearch (TPE) and ASHA, locally or on an existing cluster.

Ray 2.6x traps handled here: a custom searcher runs one trial at a time unless
`max_concurrent_trials` is set, so it always is; `reuse_actors=True`; `RunConfig` comes from
`ray.tune` and results go to `storage_path` (the run folder), never ~/ray_results; a new local
cluster gets `RAY_AUTH_MODE=disabled` and a temp dir under the system temp folder, not $HOME.
`address=None` starts a local cluster (or joins $RAY_ADDRESS when set, Ray's own rule); an
address such as `10.0.0.5:6379` attaches to a running head. `ray.init(address)` attaches only
through a raylet on the same host, so a driver pod (no Ray node) first joins the RayCluster as a
node with no CPUs when $PITWALL_RAY_JOIN is set (the operator's RayCluster path): trials still run
on the workers, while the Tuner and its callbacks stay in the driver (Ray Client would run the
Tuner remotely, without our progress and MLflow callbacks).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitwall_api.contract import POD_IP_ENV, RAY_JOIN_ENV
from ray.tune import Callback

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.tuning.objective import TuningData, final_params, run_trial
from pitwall_trainer.tuning.results import COMPLETE, FAILED, PRUNED, Bookkeeper, TrialRecord
from pitwall_trainer.tuning.space import Scheduler, SearchSpace, distributions

log = logging.getLogger(__name__)

JOIN_ENV = RAY_JOIN_ENV
STEP = "step"  # the time attribute ASHA reads: boosting round (XGBoost) or fold number
FINAL = "final"


@dataclass
class RayOutcome:
    best_params: dict[str, Any]
    best_value: float | None
    counts: dict[str, int]
    address: str | None
    cluster_cpus: float


def ray_environment() -> None:
    """Before ray.init: no token auth, no usage reporting, no files in the home folder."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new console output ignores verbose=0


def ray_temp_dir() -> str:
    """Short (Unix socket paths are limited to 107 bytes) and outside $HOME."""
    return os.path.join(tempfile.gettempdir(), f"pitwall-ray-{os.getuid()}")


def trainable(config: dict[str, Any], data: TuningData, scheduler: Scheduler) -> None:
    """One trial inside a Ray worker: every reported round goes to ASHA through tune.report."""
    from ray import tune

    def report(step: int, value: float, final: bool) -> bool:
        tune.report({STEP: step, data.metric: value, FINAL: final})
        return False  # ASHA stops the trial itself; control never comes back after a STOP

    run_trial(data, config, report, scheduler)


def _connect(address: str | None, num_cpus: int | None) -> bool:
    """Start or join Ray; True when this call started it (so we shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    ray_environment()
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                              "configure_logging": True}
    if address and address.startswith("ray://"):
        try:
            import ray.util.client  # noqa: F401  (ray[client] extra)
        except ImportError:
            raise ConfigError("--ray-address: ray:// addresses need the ray[client] extra; use host:port") from None
    if needs_join(address) and os.environ.get(POD_IP_ENV):  # this pod's node, not another raylet it sees
        kwargs["_node_ip_address"] = os.environ[POD_IP_ENV]
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # num_cpus None: Ray reads the container's CPU limit (os.cpu_count() would see the whole node)
        kwargs.update(num_cpus=num_cpus, include_dashboard=False, _temp_dir=ray_temp_dir())
    try:
        ray.init(address=address, **kwargs)
    except ValueError as error:
        raise ConfigError(f"--ray-address: {address!r}: {error}") from None
    except ConnectionError as error:
        raise ConnectionError(f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {error}") from error
    return True


@contextmanager
def joined_as_node(address: str) -> Iterator[None]:
    """Run a 0-CPU Ray node in a session of its own for as long as the search runs.

    `ray start --block` keeps its raylet as children; the whole session is stopped at the end, so
    nothing outlives the driver. `ray.init(address)` then waits (up to Ray's GCS timeout) for it.
    """
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", f"--address={address}",
               "--num-cpus=0", "--num-gpus=0", "--block", "--disable-usage-stats"]
    if os.environ.get(POD_IP_ENV):
        command.append(f"--node-ip-address={os.environ[POD_IP_ENV]}")
    log.info("joining the Ray cluster at %s as a node with no CPUs", address)
    # a file, not a pipe: nobody reads the node's output while the search runs
    with tempfile.TemporaryFile(mode="w+") as output:
        node = subprocess.Popen(command, start_new_session=True, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            yield
        except BaseException:
            if node.poll() is not None:  # the node never came up: its output says why
                output.seek(0)
                raise ConnectionError(f"cannot join the Ray cluster at {address}: `ray start` exited "
                                      f"{node.returncode}: {output.read()[-2000:]}") from None
            raise
        finally:
            _stop_session(node)


def _stop_session(node: subprocess.Popen) -> None:
    """SIGTERM to the node's session (ray start stops its raylet), SIGKILL whatever is left."""
    with suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            node.wait(timeout=15)
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()


def needs_join(address: str | None) -> bool:
    target = address or os.environ.get("RAY_ADDRESS") or ""
    return os.environ.get(JOIN_ENV) == "1" and bool(target) and not target.startswith("ray://")


class Reporter(Callback):
    """Runs in the driver: every finished trial goes to the bookkeeper (progress, MLflow).

    The Tuner pickles its callbacks into the run folder (for restore); the bookkeeper holds
    locks and a live progress bar, so it is left out of the pickle.
    """

    def __init__(self, metric: str, keeper: Bookkeeper | None) -> None:
        self.metric, self.keeper = metric, keeper
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.numbers: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"metric": self.metric, "keeper": None, "history": {}, "numbers": {}}

    def _number(self, trial: Any) -> int:
        return self.numbers.setdefault(trial.trial_id, len(self.numbers))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._number(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.metric in result and STEP in result:
            self.history.setdefault(trial.trial_id, []).append((int(result[STEP]), float(result[self.metric])))

    def _record(self, trial: Any, state: str) -> None:
        if self.keeper is None:
            return
        last = trial.last_result or {}
        history = self.history.get(trial.trial_id, [])
        value = last.get(self.metric, history[-1][1] if history else None)
        self.keeper.finished(TrialRecord(self._number(trial), dict(trial.config), value, state,
                                         int(last.get(STEP, 0)), history))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, COMPLETE if (trial.last_result or {}).get(FINAL) else PRUNED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, FAILED)


def run_ray(
    data: TuningData,
    space: SearchSpace,
    scheduler: Scheduler,
    num_samples: int,
    max_concurrent: int | None,
    run_dir: Path,
    keeper: Bookkeeper,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    num_cpus: int | None = None,
    seed: int | None = None,
) -> RayOutcome:
    """Run the search on Ray; the best trial is the best one that ran to its last round."""
    joined = needs_join(address)
    node = joined_as_node(address or os.environ["RAY_ADDRESS"]) if joined else nullcontext()
    with node:
        return _search(data, space, scheduler, num_samples, max_concurrent, run_dir, keeper, address,
                       cpus_per_trial, gpus_per_trial, num_cpus, seed)


def _search(
    data: TuningData, space: SearchSpace, scheduler: Scheduler, num_samples: int, max_concurrent: int | None,
    run_dir: Path, keeper: Bookkeeper, address: str | None, cpus_per_trial: float, gpus_per_trial: float,
    num_cpus: int | None, seed: int | None,
) -> RayOutcome:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    started = _connect(address, num_cpus)
    try:
        cluster_cpus = float(ray.cluster_resources().get("CPU", 1))
        if max_concurrent is None:  # as many as fit, bounded by the samples
            max_concurrent = max(1, int(cluster_cpus // max(cpus_per_trial, 1e-9)))
        max_concurrent = min(max_concurrent, num_samples)
        resources = {"cpu": cpus_per_trial} | ({"gpu": gpus_per_trial} if gpus_per_trial else {})
        data.n_jobs = max(1, int(cpus_per_trial))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(
            space=distributions(space), metric=data.metric, mode=data.mode,
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        )
        if scheduler.enabled:
            trial_scheduler: Any = ASHAScheduler(
                time_attr=STEP, max_t=scheduler.max_t, grace_period=scheduler.grace_period,
                reduction_factor=scheduler.reduction_factor,
            )
        else:
            trial_scheduler = FIFOScheduler()
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, data=data, scheduler=scheduler), resources),
            tune_config=tune.TuneConfig(
                metric=data.metric, mode=data.mode, search_alg=searcher, scheduler=trial_scheduler,
                num_samples=num_samples, max_concurrent_trials=max_concurrent, reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="ray", storage_path=str(run_dir.resolve()), verbose=0,
                callbacks=[Reporter(data.metric, keeper)],
            ),
        )
        grid = tuner.fit()
        counts = keeper.counts()
        best = keeper.best
        if best is None:
            detail = f": {grid.errors[0]}" if grid.errors else ""
            raise RuntimeError(f"no Ray trial ran to its last round ({counts}){detail}")
        return RayOutcome(final_params(data, best.params, scheduler), best.value, counts,
                          address or os.environ.get("RAY_ADDRESS"), cluster_cpus)
    finally:
        if started:
            ray.shutdown()
