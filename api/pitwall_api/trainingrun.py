"""TrainingRun: one training (optionally tuned) of one model, from data to a promoted MLflow version.

Shaped after Kubeflow Trainer's TrainJob (runPolicy, suspend), KubeRay (a Ray cluster described
by worker count and resources) and Katib's Experiment (a search space of typed parameters with
an objective), minus what their users complained about: the state column reads a derived
`status.state` instead of the last condition, and conditions keep their transition times.
"""

from __future__ import annotations

import math
import re
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from pitwall_api.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    Condition,
    EnvVar,
    Resources,
    SecretKeyRef,
    SpecModel,
    State,
    StatusModel,
    Toleration,
    cel,
    cel_rules,
    conditions_schema_extra,
)

KIND = "TrainingRun"
PLURAL = "trainingruns"

ModelName = Literal["race_winner", "quali_order", "pit_window"]
Algorithm = Literal["xgboost", "random_forest", "logistic_regression"]
PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
KUEUE_PREFIX = "kueue.x-k8s.io/"



# Defaults shared by the CRD, the trainer's CLI and a pod (one definition each).
DEFAULT_ALGORITHM = "logistic_regression"  # every model's; chosen on backtests of 2019-2023
DEFAULT_WALK_FORWARD_FOLDS = 4
DEFAULT_ALIAS = "champion"
PromotionPolicy = Literal["IfBetter", "Always", "Never"]
PROMOTION_POLICIES: tuple[str, ...] = typing.get_args(PromotionPolicy)


# --- data -------------------------------------------------------------------------------------


class PvcSource(SpecModel):
    """Ergast-schema CSVs already on a PersistentVolumeClaim (e.g. `training-data-pvc`)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(cel("!self.path.contains('..')", "path must not contain '..' (it is a subPath)"))
    )

    claim_name: str = Field(..., min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="PersistentVolumeClaim in the run's namespace.")
    path: str = Field("", max_length=1024, pattern=r"^([^/.][^:]*)?$", description="Folder inside the volume holding races.csv etc. (a relative subPath; empty = the volume root).")
    read_only: bool = Field(True, description="Mount the claim read-only (the trainer never writes its input).")

    @field_validator("path")
    @classmethod
    def _no_escape(cls, path: str) -> str:
        if ".." in path:
            raise ValueError("path must not contain '..' (it is a subPath)")
        return path


class FetchSource(SpecModel):
    """Fetch the tables from the Jolpica API (Ergast-compatible) into a cache before training."""

    base_url: str | None = Field(None, max_length=2048, pattern=r"^https?://", description="API base URL; omitted = the trainer's default (Jolpica).")
    cache_claim_name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN, description="PersistentVolumeClaim that keeps the fetch cache between runs; omitted = an emptyDir, fetched every run.")


class DataSource(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(cel("has(self.pvc) != has(self.fetch)", "set exactly one of pvc or fetch"))
    )
    pvc: PvcSource | None = Field(None, description="Read CSVs from a PersistentVolumeClaim.")
    fetch: FetchSource | None = Field(None, description="Fetch from the Jolpica API into a cache.")

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSource:
        if (self.pvc is None) == (self.fetch is None):
            raise ValueError("set exactly one of pvc or fetch")
        return self


class Data(SpecModel):
    seasons: list[Annotated[int, Field(ge=1950, le=2100)]] = Field(
        ..., min_length=1, max_length=80, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Seasons to train on, e.g. `[2022, 2023, 2024]`. Splits are by race date, never shuffled.",
    )
    source: DataSource | None = Field(None, description="Where the tables come from; omitted = the operator's configured default.")

    @field_validator("seasons")
    @classmethod
    def _unique(cls, seasons: list[int]) -> list[int]:
        dupes = sorted({s for s in seasons if seasons.count(s) > 1})
        if dupes:
            raise ValueError(f"season {dupes[0]} is listed twice")
        return seasons


# --- evaluation -------------------------------------------------------------------------------


class Evaluation(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel("!(has(self.holdoutRaces) && has(self.holdoutSeason))", "set holdoutRaces or holdoutSeason, not both")
        )
    )
    holdout_races: int | None = Field(None, ge=1, le=100, description="Evaluate on the last N races by date (trained on everything before them).")
    holdout_season: int | None = Field(None, ge=1950, le=2100, description="Evaluate on this whole season. Neither set = the trainer's default: the last season in data.seasons.")
    walk_forward_folds: int = Field(DEFAULT_WALK_FORWARD_FOLDS, ge=0, le=50, description="Expanding-window folds by race date over the evaluation races (each trained on everything before it); 0 = the single holdout only.")

    @model_validator(mode="after")
    def _one_holdout(self) -> Evaluation:
        if self.holdout_races is not None and self.holdout_season is not None:
            raise ValueError("set holdoutRaces or holdoutSeason, not both")
        return self


# --- tuning -----------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    if isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(f"categorical values must be strings, numbers or booleans, not {value!r}")


# Categorical values may be strings, numbers or booleans: a structural schema cannot say
# "string or number", so the CRD keeps any value and pydantic checks it is a scalar. A field of
# untyped items is invisible to CEL (the API server refuses a rule naming `self.values`), so the
# "categorical takes values" half of the rule below is the operator's (ValidationFailed).
Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]


class SearchParam(SpecModel):
    """One tunable hyperparameter, like Katib's parameterSpec or Ray Tune's randint/loguniform/choice."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel(
                "self.type == 'categorical' ? (!has(self.low) && !has(self.high)) : (has(self.low) && has(self.high))",
                "int, float and logfloat take low and high; categorical takes values instead",
            ),
            cel("!has(self.low) || !has(self.high) || self.low < self.high", "low must be below high"),
            cel("self.type != 'logfloat' || !has(self.low) || self.low > 0.0", "logfloat needs low above 0"),
        )
    )
    type: Literal["int", "float", "logfloat", "categorical"] = Field(..., description="int: uniform integer in [low, high]; float: uniform; logfloat: log-uniform (low > 0); categorical: one of values.")
    low: float | None = Field(None, description="Lower bound (int, float, logfloat).")
    high: float | None = Field(None, description="Upper bound (int, float, logfloat); must be above low.")
    values: list[Scalar] | None = Field(None, min_length=1, max_length=64, json_schema_extra={"x-kubernetes-list-type": "atomic"}, description="Choices (categorical only): strings, numbers or booleans.")

    @model_validator(mode="after")
    def _shape(self) -> SearchParam:
        if self.type == "categorical":
            if self.values is None or self.low is not None or self.high is not None:
                raise ValueError("categorical takes values, not low/high")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError("categorical values must be distinct")
            return self
        if self.values is not None:
            raise ValueError(f"values are only for categorical; {self.type} takes low and high")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs both low and high")
        if self.low >= self.high:
            raise ValueError(f"low ({_num(self.low)}) must be below high ({_num(self.high)})")
        if self.type == "logfloat" and self.low <= 0:
            raise ValueError(f"logfloat needs low above 0 (got {_num(self.low)})")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError("int bounds must be whole numbers")
        return self


def _num(x: float) -> str:
    """12.0 prints as 12: the message should echo what the user wrote."""
    return str(int(x)) if float(x).is_integer() else str(x)


def _param_names(space: dict[str, SearchParam]) -> dict[str, SearchParam]:
    """Checked here, not in the CRD: a regex over map keys has no cheap CEL cost bound."""
    for name in space:
        if not re.match(PARAM_NAME, name) or len(name) > 64:
            raise ValueError(f"parameter name {name!r} must be a Python identifier such as max_depth")
    return space


# Hyperparameters by name; the trainer validates a `--search-space` file with the same type.
SearchSpace = Annotated[dict[str, SearchParam], AfterValidator(_param_names)]


class AshaScheduler(SpecModel):
    """Asynchronous successive halving: stop poor trials early (Ray Tune's ASHAScheduler)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(cel("!has(self.maxT) || self.gracePeriod <= self.maxT", "gracePeriod must not exceed maxT"))
    )
    type: Literal["ASHA", "FIFO"] = Field("ASHA", description="ASHA stops bad trials early; FIFO runs every trial to the end.")
    max_t: int | None = Field(None, ge=1, le=100000, description="Longest a trial may run, in training iterations (boosting rounds for XGBoost, folds otherwise); omitted = the largest n_estimators of the search space.")
    grace_period: int = Field(10, ge=1, le=100000, description="Iterations before a trial may be stopped.")
    reduction_factor: int = Field(3, ge=2, le=10, description="Keep the top 1/reductionFactor trials at each rung.")

    @model_validator(mode="after")
    def _grace(self) -> AshaScheduler:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"gracePeriod ({self.grace_period}) must not exceed maxT ({self.max_t})")
        return self


class RayClusterSpec(SpecModel):
    """The Ray cluster for `engine: ray` (KubeRay RayCluster, head and workers run the trainer image)."""

    workers: int = Field(2, ge=0, le=64, description="Worker pods; 0 = tune inside the driver Job with a local Ray (no RayCluster).")
    worker_resources: Resources | None = Field(None, description="Resources of each worker pod; omitted = the run's `resources`.")
    head_resources: Resources | None = Field(None, description="Resources of the head pod; omitted = the run's `resources`.")
    ray_version: str | None = Field(None, max_length=32, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="Ray version of the image (KubeRay's rayVersion); omitted = the version the trainer image ships.")


class OptunaSpec(SpecModel):
    storage_secret_ref: SecretKeyRef | None = Field(None, description="Secret key holding the Optuna storage URL (e.g. postgresql://...); omitted = in-memory study in the pod.")
    study_name: str | None = Field(None, max_length=128, description="Study name; omitted = the TrainingRun's namespace/name (resumable after a retry).")


class Tuning(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel("self.engine == 'ray' || !has(self.rayCluster)", "rayCluster is only for engine ray"),
            cel("self.engine == 'optuna' || !has(self.optuna)", "optuna is only for engine optuna"),
            cel("!has(self.maxConcurrentTrials) || self.maxConcurrentTrials <= self.numSamples", "maxConcurrentTrials must not exceed numSamples"),
        )
    )
    engine: Literal["ray", "optuna"] = Field("optuna", description="ray: Ray Tune (on a RayCluster when rayCluster.workers > 0); optuna: an Optuna study in the training pod.")
    num_samples: int = Field(20, ge=1, le=10000, description="Number of trials.")
    max_concurrent_trials: int | None = Field(None, ge=1, le=1000, description="Trials running at once; omitted = the engine's default (Ray: as many as fit; Optuna: 1).")
    metric: str | None = Field(None, max_length=128, description="Objective; omitted = the model's primary metric (e.g. top1_accuracy).")
    mode: Literal["max", "min"] | None = Field(None, description="Maximise or minimise the objective; omitted = the metric's natural direction.")
    search_space: SearchSpace = Field(
        ..., min_length=1, max_length=32,
        description="Hyperparameters by name (passed to the estimator as keyword arguments), e.g. `max_depth: {type: int, low: 3, high: 12}`.",
    )
    scheduler: AshaScheduler | None = Field(None, description="Early stopping (Ray ASHA; Optuna's successive halving with the same rungs); omitted = ASHA with maxT the space's largest n_estimators, gracePeriod 10, reductionFactor 3.")
    ray_cluster: RayClusterSpec | None = Field(None, description="Ray cluster shape (engine ray); omitted = 2 workers with the run's resources.")
    optuna: OptunaSpec | None = Field(None, description="Optuna settings (engine optuna).")

    @model_validator(mode="after")
    def _engine_parts(self) -> Tuning:
        if self.engine != "ray" and self.ray_cluster is not None:
            raise ValueError("rayCluster is only for engine ray")
        if self.engine != "optuna" and self.optuna is not None:
            raise ValueError("optuna is only for engine optuna")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials > self.num_samples:
            raise ValueError(
                f"maxConcurrentTrials ({self.max_concurrent_trials}) must not exceed numSamples ({self.num_samples})"
            )
        return self


# --- tracking, promotion, running -------------------------------------------------------------


class MlflowSpec(SpecModel):
    tracking_uri: str | None = Field(None, max_length=2048, description="MLflow tracking server, e.g. http://mlflow:5000; omitted = the operator's configured default.")
    experiment: str | None = Field(None, max_length=256, description="Experiment name; omitted = `pitwall-<model>`.")
    registered_model_name: str | None = Field(None, max_length=256, description="Registered model name; omitted = `pitwall-<model>`.")


class Promotion(SpecModel):
    """Deploy-if-better: move the alias to the new version only when the policy says so."""

    policy: PromotionPolicy = Field("IfBetter", description="IfBetter: promote when the new version beats the alias holder by minImprovement (or no holder exists); Always; Never.")
    metric: str | None = Field(None, max_length=128, description="Metric compared; omitted = the model's primary metric (e.g. top1_accuracy).")
    mode: Literal["max", "min"] | None = Field(None, description="Whether higher (max) or lower (min) is better; omitted = the metric's natural direction.")
    min_improvement: float = Field(0.0, ge=0, description="Required margin over the champion, in the metric's units (0.01 = one point of accuracy).")
    alias: str = Field(DEFAULT_ALIAS, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$", description="MLflow registered-model alias that marks production.")


class RunPolicy(SpecModel):
    """Retries and clean-up of the children, as in Kubeflow's RunPolicy and batch/v1 Job."""

    backoff_limit: int = Field(3, ge=0, le=100, description="Retries of the training pod (exit code 2, bad config or data, is never retried).")
    active_deadline_seconds: int | None = Field(None, ge=1, description="Fail the run (DeadlineExceeded) after this long, retries included. Omitted = the operator's default (the chart's defaults.activeDeadlineSeconds, 24 h).")
    ttl_seconds_after_finished: int | None = Field(None, ge=0, description="Delete the children (Job, RayCluster) this long after the run ends; the TrainingRun itself stays.")


class SlackNotification(SpecModel):
    webhook_secret_ref: SecretKeyRef = Field(..., description="Secret key holding the Slack incoming-webhook URL.")


class Notifications(SpecModel):
    slack: SlackNotification | None = Field(None, description="Post alerts to Slack.")
    events: list[Literal["Failed", "Regression", "Succeeded", "Promoted"]] = Field(
        default=["Failed", "Regression"], max_length=4, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Which events alert: Failed, Regression (new model worse than the champion), Succeeded, Promoted.",
    )


class LocalObjectReference(SpecModel):
    name: str = Field(..., min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of a Secret in the run's namespace.")


class TrainingRunSpec(SpecModel):
    """What to train, on which data, how to evaluate, tune, track and promote it, and where to run it."""

    model_config = ConfigDict(title="TrainingRunSpec")

    model: ModelName = Field(..., description="Which model: race_winner, quali_order or pit_window.")
    algorithm: Algorithm = Field(DEFAULT_ALGORITHM, description="Estimator family; the default is the same for every model (a conditional logit for race_winner, Ridge for quali_order and pit_window).")
    data: Data = Field(..., description="Seasons and where the Ergast-schema tables come from.")
    evaluation: Evaluation | None = Field(None, description="Holdout and walk-forward folds; omitted = the last season held out.")
    tuning: Tuning | None = Field(None, description="Hyperparameter search; omitted = train once with the algorithm's defaults.")
    mlflow: MlflowSpec | None = Field(None, description="Tracking and registry; omitted = the operator's configured MLflow.")
    promotion: Promotion | None = Field(None, description="When to move the alias; omitted = IfBetter on the primary metric, alias champion.")
    image: str | None = Field(None, max_length=512, description="Trainer image; omitted = the operator's configured image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(None, description="Omitted = Kubernetes' rule (Always for :latest, else IfNotPresent).")
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        None, max_length=16, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Secrets for pulling the image from a private registry (pods of the Job and the RayCluster).",
    )
    resources: Resources | None = Field(None, description="Resources of the training container (a full-history training fits in requests cpu 4, memory 8Gi; limits cpu 8, memory 16Gi).")
    env: list[EnvVar] | None = Field(
        None, max_length=64, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Extra environment of the trainer container (plain values or Secret/ConfigMap keys).",
    )
    node_selector: dict[str, str] | None = Field(None, max_length=32, description="Pod nodeSelector.")
    tolerations: list[Toleration] | None = Field(None, max_length=32, json_schema_extra={"x-kubernetes-list-type": "atomic"}, description="Pod tolerations.")
    service_account_name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN, description="ServiceAccount of the pods (the chart's admission.allowedServiceAccounts lists those allowed). Omitted = an account of this run's own, allowed to read this run and write its status only.")
    queue_name: str | None = Field(None, max_length=63, pattern=DNS_LABEL, description="Kueue LocalQueue: set as label kueue.x-k8s.io/queue-name on the Job and RayCluster (Kueue then admits them). Labels kueue.x-k8s.io/* on the TrainingRun's metadata are passed through as well; this field wins.")
    priority_class_name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN, description="PriorityClass of the pods (also what Kueue uses for ordering when no WorkloadPriorityClass label is set).")
    run_policy: RunPolicy | None = Field(None, description="Retries, deadline and clean-up; omitted = backoffLimit 3, no deadline, children kept.")
    suspend: bool = Field(False, description="true stops the children (state Suspended); false starts them again. Like batch/v1 Job suspend, also used by Kueue.")
    notifications: Notifications | None = Field(None, description="Alerts on failure and regression.")


# --- status -----------------------------------------------------------------------------------

_FINITE = "Numbers are finite (NaN and infinity are written as absent)."


Phase = Literal["Loading", "Features", "Tuning", "Evaluating", "Training", "Registering", "Promoting", "Done"]
PHASES: tuple[str, ...] = Phase.__args__  # in the order a run goes through them (Tuning only when asked)
DISPLAY_DIGITS = 3


def round_for_display(value: float) -> float:
    """A figure as `kubectl get` should print it: 3 decimals (3 significant digits below 0.1)."""
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, DISPLAY_DIGITS) if abs(value) >= 0.1 else float(f"{value:.{DISPLAY_DIGITS}g}")


class Progress(StatusModel):
    phase: Phase | None = Field(None, description="What the trainer is doing: Loading (data and its validation), Features, Tuning (a trial per step), Evaluating (a walk-forward fold per step), Training (the final fit), Registering, Promoting, Done (the Phase column).")
    percent: int | None = Field(None, ge=0, le=100, description="Whole percent done over all phases; never goes back (the Progress column).")
    message: str | None = Field(None, max_length=1024, description="What is happening, e.g. `trial 12/50, best 0.612`.")
    step: int | None = Field(None, ge=0, description="Steps done in the current phase (trials, folds).")
    total_steps: int | None = Field(None, ge=0, description="Steps of the current phase.")
    metric_name: str | None = Field(None, max_length=128, description="The objective currentMetric and bestMetric measure, e.g. `top1_accuracy`.")
    current_metric: float | None = Field(None, description="Latest value of the objective, rounded for display (3 decimals; the exact figures are in status.metrics).")
    best_metric: float | None = Field(None, description="Best value so far, rounded for display like currentMetric (the Best column).")
    eta_seconds: int | None = Field(None, ge=0, description="Estimated seconds left, from the measured step times.")
    updated_at: datetime | None = Field(None, description="When the trainer last reported.")

    @field_validator("current_metric", "best_metric", mode="after")
    @classmethod
    def _round_metric(cls, value: float | None) -> float | None:
        """`kubectl get` prints a number column as stored: 0.542, not 0.5416666666666666."""
        return None if value is None else round_for_display(value)

    @field_validator("percent", mode="before")
    @classmethod
    def _round_percent(cls, value: Any) -> Any:
        """The trainer computes a float; the column shows a whole number."""
        return max(0, min(100, round(value))) if isinstance(value, float) else value

    @field_validator("eta_seconds", mode="before")
    @classmethod
    def _round_eta(cls, value: Any) -> Any:
        return max(0, round(value)) if isinstance(value, float) else value


class ResourceUsage(StatusModel):
    """What the trainer's own process tree uses, sampled by the trainer (GPU fields only with a GPU)."""

    cpu_cores: float | None = Field(None, ge=0, description="CPU cores in use (1.0 = one core busy), summed over the trainer's processes.")
    memory_bytes: int | None = Field(None, ge=0, description="Resident memory (RSS) of the trainer's processes, summed.")
    gpu_utilization: float | None = Field(None, ge=0, le=100, description="GPU utilisation in percent (mean over the visible GPUs, from nvidia-smi).")
    gpu_memory_bytes: int | None = Field(None, ge=0, description="GPU memory in use (summed over the visible GPUs).")
    peak_cpu_cores: float | None = Field(None, ge=0, description="Highest cpuCores sampled so far.")
    peak_memory_bytes: int | None = Field(None, ge=0, description="Highest memoryBytes sampled so far.")
    peak_gpu_utilization: float | None = Field(None, ge=0, le=100, description="Highest gpuUtilization sampled so far.")
    peak_gpu_memory_bytes: int | None = Field(None, ge=0, description="Highest gpuMemoryBytes sampled so far.")
    sampled_at: datetime | None = Field(None, description="When the trainer last sampled.")


class MlflowStatus(StatusModel):
    run_id: str | None = Field(None, max_length=128, description="MLflow run id.")
    experiment_id: str | None = Field(None, max_length=128, description="MLflow experiment id.")
    model_version: str | None = Field(None, max_length=32, description="Registered model version (a string, as MLflow's REST API returns it).")
    model_uri: str | None = Field(None, max_length=1024, description="e.g. models:/pitwall-race_winner/7.")
    run_url: str | None = Field(None, max_length=2048, description="Link to the run in the MLflow UI.")


class PromotionStatus(StatusModel):
    promoted: bool | None = Field(None, description="Whether this run's version now holds the alias.")
    alias: str | None = Field(None, max_length=63, description="The alias considered.")
    version: str | None = Field(None, max_length=32, description="Version that received the alias (the Promoted column); absent when not promoted.")
    previous_version: str | None = Field(None, max_length=32, description="Version that held the alias before.")
    reason: str | None = Field(None, max_length=1024, description="Why (e.g. `top1_accuracy 0.58 > 0.54 + 0.00`).")
    regression: bool | None = Field(None, description="The new version is worse than the champion (alerted).")


class TrainingRunStatus(StatusModel):
    """Written by the operator (and progress by the trainer); users never write it."""

    model_config = ConfigDict(title="TrainingRunStatus")

    state: State | None = Field(None, description="Derived from the True conditions (Failed > Succeeded > Suspended > Running > Pending): the State column.")
    conditions: list[Condition] | None = Field(
        None, max_length=16, json_schema_extra=conditions_schema_extra(),
        description="Types: Running, Succeeded, Failed, Suspended, ModelRegistered, Promoted (metav1.Condition).",
    )
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation the status reflects.")
    start_time: datetime | None = Field(None, description="When the first child was created.")
    completion_time: datetime | None = Field(None, description="When the run reached Succeeded or Failed.")
    job_name: str | None = Field(None, max_length=253, description="The training (or tuning driver) Job.")
    ray_cluster_name: str | None = Field(None, max_length=253, description="The RayCluster, with engine ray and workers > 0.")
    attempts: int | None = Field(None, ge=0, description="Pods started so far (1 + retries).")
    progress: Progress | None = Field(None, description="Live progress reported by the trainer.")
    resources: ResourceUsage | None = Field(None, description="CPU, memory and GPU the trainer uses, with peaks (reported with the progress).")
    metrics: dict[str, float] | None = Field(None, max_length=64, description="Final metrics on the evaluation races, name → value. " + _FINITE)
    baselines: dict[str, float] | None = Field(None, max_length=64, description="Baseline metrics on the same races (e.g. pole_sitter.top1_accuracy). " + _FINITE)
    non_finite_metrics: list[Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=64, description="Figures the trainer computed as NaN or infinite, named here and left out of metrics and baselines (JSON has no NaN).",
    )
    best_params: dict[str, Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]] | None = Field(
        None, max_length=32, description="Best hyperparameters found by tuning."
    )
    mlflow: MlflowStatus | None = Field(None, description="Where the run and model live in MLflow.")
    promotion: PromotionStatus | None = Field(None, description="The promotion decision.")
    kopf: dict[str, Any] | None = Field(
        None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="Operator bookkeeping (kopf's StatusProgressStorage `progress`/`dummy` and StatusDiffBaseStorage `last-handled-configuration`). Not an API.",
    )


def kueue_labels(spec: TrainingRunSpec, metadata_labels: dict[str, str] | None) -> dict[str, str]:
    """Labels to put on the Job/RayCluster for Kueue: the run's kueue.x-k8s.io/* labels plus queueName."""
    labels = {k: v for k, v in (metadata_labels or {}).items() if k.startswith(KUEUE_PREFIX)}
    if spec.queue_name:
        labels[KUEUE_PREFIX + "queue-name"] = spec.queue_name
    return labels
