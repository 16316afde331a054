"""RetrainPolicy: when to create TrainingRuns from a template, like a CronJob with data triggers.

A typical policy retrains every Tuesday 06:00 after a race weekend and whenever accuracy falls below 90%
of the baseline, data drift passes 0.1 or 20+ new samples arrive, deploying only a better model.
Schedule, concurrency policy and history limits copy CronJob's names so they read familiar.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator

from pitwall_api.common import (
    Condition,
    SpecModel,
    StatusModel,
    cel,
    cel_rules,
    conditions_schema_extra,
)
from pitwall_api.trainingrun import TrainingRunSpec

KIND = "RetrainPolicy"
PLURAL = "retrainpolicies"

# Five cron fields (minute hour day-of-month month day-of-week, names allowed) or a macro.
_FIELD = r"[0-9A-Za-z*?/,\-LW#]+"
CRON_PATTERN = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_FIELD}( +{_FIELD}){{4}})$"
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
TriggerReason = Literal["Schedule", "AfterNewRace", "PerformanceDrift", "DataDrift", "NewData", "Manual"]


def duration_seconds(text: str) -> int:
    """`1h30m` → 5400: the operator's timer interval from checkInterval."""
    match = re.fullmatch(DURATION_PATTERN, text)
    if not match or not text:
        raise ValueError(f"{text!r} is not a duration such as 15m, 1h or 1h30m")
    h, m, s = (int(g[:-1]) if g else 0 for g in match.groups())
    return h * 3600 + m * 60 + s


class AfterNewRace(SpecModel):
    enabled: bool = Field(True, description="Retrain when the data holds a race newer than the champion's training data.")


class PerformanceDrift(SpecModel):
    threshold: float = Field(0.9, ge=0.01, le=1, description="Retrain when recent accuracy < threshold × the champion's baseline accuracy (0.9 = a 10% drop).")
    window_races: int = Field(5, ge=1, le=50, description="Recent races the accuracy is measured on.")


class DataDrift(SpecModel):
    threshold: float = Field(0.1, ge=0.001, le=10, description="Retrain when the drift score exceeds this.")
    method: Literal["psi"] = Field("psi", description="Drift score: population stability index over the key features.")


class NewData(SpecModel):
    min_samples: int = Field(20, ge=1, le=100000, description="Retrain when at least this many new rows (driver entries; ~20 per race) arrived since the champion's training.")


class Triggers(SpecModel):
    """Data-dependent triggers, evaluated by a short monitoring Job every checkInterval; any one fires."""

    after_new_race: AfterNewRace | None = Field(None, description="A new race in the data.")
    performance_drift: PerformanceDrift | None = Field(None, description="Champion accuracy dropped.")
    data_drift: DataDrift | None = Field(None, description="Input distribution moved.")
    new_data: NewData | None = Field(None, description="Enough new samples.")


class TemplateMetadata(SpecModel):
    labels: dict[str, str] | None = Field(None, max_length=32, description="Labels of created TrainingRuns (e.g. kueue.x-k8s.io/queue-name).")
    annotations: dict[str, str] | None = Field(None, max_length=32, description="Annotations of created TrainingRuns.")


class TrainingRunTemplate(SpecModel):
    """Like a CronJob's jobTemplate: metadata and spec of each TrainingRun created."""

    metadata: TemplateMetadata | None = Field(None, description="Labels and annotations to add.")
    spec: TrainingRunSpec = Field(..., description="The TrainingRun spec.")


class RetrainPolicySpec(SpecModel):
    model_config = ConfigDict(
        title="RetrainPolicySpec",
        json_schema_extra=cel_rules(cel("has(self.schedule) || has(self.triggers)", "set a schedule, triggers, or both")),
    )

    template: TrainingRunTemplate = Field(..., description="What each created TrainingRun looks like.")
    schedule: str | None = Field(None, max_length=128, pattern=CRON_PATTERN, description='Cron schedule, e.g. "0 6 * * 2" (Tuesday 06:00, after a race weekend).')
    time_zone: str = Field("UTC", max_length=64, description="IANA time zone of the schedule, e.g. Europe/London.")
    triggers: Triggers | None = Field(None, description="Data-dependent triggers; omitted = schedule only.")
    check_interval: str = Field("15m", min_length=2, max_length=32, pattern=DURATION_PATTERN, description="How often the schedule and triggers are evaluated (e.g. 15m, 1h).")
    starting_deadline_seconds: int | None = Field(None, ge=0, description="A schedule tick missed by more than this is skipped (as in CronJob).")
    concurrency_policy: Literal["Forbid", "Replace", "Allow"] = Field("Forbid", description="When a run is still active: Forbid skips the new one, Replace deletes the active run, Allow runs both.")
    successful_runs_history_limit: int = Field(3, ge=0, le=100, description="Succeeded TrainingRuns kept (only runs this policy created are deleted).")
    failed_runs_history_limit: int = Field(1, ge=0, le=100, description="Failed TrainingRuns kept.")
    suspend: bool = Field(False, description="true stops creating runs (active runs continue).")

    @model_validator(mode="after")
    def _something_fires(self) -> RetrainPolicySpec:
        if self.schedule is None and self.triggers is None:
            raise ValueError("set a schedule, triggers, or both")
        return self

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as UTC or Europe/London") from None
        return value

    @field_validator("check_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if duration_seconds(value) < 10:
            raise ValueError(f"{value!r} is too short; use at least 10s")
        return value


# --- status -----------------------------------------------------------------------------------


class DataRefresh(StatusModel):
    succeeded: bool | None = Field(None, description="Whether the last data refresh worked (a failure keeps the previous data).")
    time: datetime | None = Field(None, description="When it ran.")
    message: str | None = Field(None, max_length=1024, description="Error, when it failed.")


class Signals(StatusModel):
    """The last monitoring Job's figures, so `kubectl describe` shows why a trigger fired or not."""

    computed_at: datetime | None = Field(None, description="When the signals were computed.")
    champion_version: str | None = Field(None, max_length=32, description="Champion version the signals were computed for.")
    latest_race_date: str | None = Field(None, max_length=10, description="Date of the newest race in the data (YYYY-MM-DD).")
    champion_train_end_date: str | None = Field(None, max_length=10, description="Newest race the champion was trained on.")
    new_races: int | None = Field(None, ge=0, description="Races since the champion's training.")
    new_samples: int | None = Field(None, ge=0, description="Rows since the champion's training.")
    recent_accuracy: float | None = Field(None, description="Champion accuracy over the last windowRaces races after its training.")
    baseline_accuracy: float | None = Field(None, description="The champion's recorded accuracy at training time.")
    drift_score: float | None = Field(None, description="Data drift score (PSI).")
    data_refresh: DataRefresh | None = Field(None, description="The data refresh before the signals.")


class Champion(StatusModel):
    version: str | None = Field(None, max_length=32, description="Version under the alias (the Champion column).")
    metric: str | None = Field(None, max_length=128, description="Metric name it is judged by.")
    value: float | None = Field(None, description="Its value of that metric.")
    run_name: str | None = Field(None, max_length=253, description="TrainingRun that produced it, when this policy did.")


class PromotionRecord(StatusModel):
    time: datetime | None = Field(None, description="When the run finished.")
    run_name: str | None = Field(None, max_length=253, description="The TrainingRun.")
    version: str | None = Field(None, max_length=32, description="Model version it registered.")
    promoted: bool | None = Field(None, description="Whether it became champion.")
    value: float | None = Field(None, description="Its metric value.")
    previous_value: float | None = Field(None, description="The champion's value it was compared with.")
    reason: str | None = Field(None, max_length=1024, description="The decision's reason.")


class RetrainPolicyStatus(StatusModel):
    model_config = ConfigDict(title="RetrainPolicyStatus")

    conditions: list[Condition] | None = Field(
        None, max_length=16, json_schema_extra=conditions_schema_extra(),
        description="Types: Ready (policy valid and being evaluated), Suspended, DataRefreshFailed, Failed (ValidationFailed).",
    )
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation the status reflects.")
    last_check_time: datetime | None = Field(None, description="When schedule and triggers were last evaluated.")
    last_schedule_time: datetime | None = Field(None, description="The last cron tick acted on (so a restart neither misses nor repeats it).")
    last_trigger_time: datetime | None = Field(None, description="When a run was last created (the Last Trigger column).")
    last_trigger_reasons: list[TriggerReason] | None = Field(None, max_length=6, json_schema_extra={"x-kubernetes-list-type": "atomic"}, description="Why the last run was created.")
    signals: Signals | None = Field(None, description="The last monitoring figures.")
    active_runs: list[str] | None = Field(None, max_length=50, json_schema_extra={"x-kubernetes-list-type": "atomic"}, description="Names of TrainingRuns of this policy still running.")
    last_successful_run: str | None = Field(None, max_length=253, description="Name of the last Succeeded TrainingRun.")
    champion: Champion | None = Field(None, description="The current champion.")
    promotion_history: list[PromotionRecord] | None = Field(None, max_length=20, json_schema_extra={"x-kubernetes-list-type": "atomic"}, description="Last 20 decisions, newest first.")
    kopf: dict[str, object] | None = Field(
        None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="Operator bookkeeping (kopf's progress and last-handled-configuration). Not an API.",
    )
