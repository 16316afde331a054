"""Promotion: move the alias to the new version only when the policy says so, under the namespace's lease;
and read the version under an alias (the retraining monitor does)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pitwall_api.trainingrun import DEFAULT_ALIAS

from pitwall_trainer.errors import ConfigError
from pitwall_trainer.progress import phase
from pitwall_trainer.promotion_guard import promotion_lease
from pitwall_trainer.registry.tracking import (
    NAME_PREFIX,
    POLICIES,
    TAG_PREFIX,
    mlflow_call,
    mlflow_client,
    registered_name,
    resolve_tracking_uri,
)
from pitwall_trainer.result import PromotionDecision, RegistryRecord, TrainResult

# ----------------------------------------------------------------------------- promotion


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _alias_version(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _run_or_none(client: MlflowClient, run_id: str | None) -> Any | None:
    """The version's run, or None when it has none or the run was deleted for good."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _run_metric(client: MlflowClient, run_id: str | None, metric: str) -> float | None:
    run = _run_or_none(client, run_id)
    return _float(run.data.metrics.get(metric)) if run is not None else None


def promote(
    record: RegistryRecord,
    result: TrainResult,
    policy: str = "IfBetter",
    metric: str | None = None,
    mode: str | None = None,
    min_improvement: float = 0.0,
    alias: str = DEFAULT_ALIAS,
    tracking_uri: str | None = None,
) -> PromotionDecision:
    """Compare the new version with the one under ``alias``, move the alias by policy, tag why."""
    phase("Promoting", message=f"comparing with the {alias} alias")
    chosen = {p.lower(): p for p in POLICIES}.get(str(policy).lower())
    if chosen is None:
        raise ConfigError(f"promotion policy {policy!r} is not one of {', '.join(POLICIES)}")
    metric = metric or result.primary_metric
    mode = (mode or result.primary_mode or "max").lower()
    if mode not in ("max", "min"):
        raise ConfigError(f"promotion mode {mode!r} is not 'max' or 'min'")
    if min_improvement < 0 or math.isnan(min_improvement):
        raise ConfigError(f"minimum improvement {min_improvement} must be zero or more")
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    name, version = record.model_name, str(record.model_version)
    # one decision at a time per namespace (promotion_guard): read, compare and move the alias
    with promotion_lease(), mlflow_call(uri, f"promote {name} version {version}"):
        new_value = _float(result.metrics.get(metric))
        if new_value is None:
            new_value = _run_metric(client, record.run_id, metric)
        if new_value is None:
            raise ConfigError(
                f"metric {metric!r} is not among the new model's metrics {sorted(result.metrics)}"
            )
        current = _alias_version(client, name, alias)
        previous_version = str(current.version) if current is not None else None
        previous_value = _run_metric(client, current.run_id, metric) if current is not None else None
        decision = _decide(
            chosen, version, previous_version, new_value, previous_value, mode, min_improvement
        )
        decision.alias, decision.metric = alias, metric
        if decision.promoted:
            client.set_registered_model_alias(name, alias, version)
            if previous_version is not None and previous_version != version:
                client.set_model_version_tag(name, previous_version, f"{TAG_PREFIX}superseded_by", version)
        tags = {
            "decision": "promoted" if decision.promoted else "not_promoted",
            "reason": decision.reason,
            "policy": chosen,
            "alias": alias,
            "metric": metric,
            "mode": mode,
            "min_improvement": repr(float(min_improvement)),
            "new_value": repr(new_value),
            "previous_version": previous_version or "none",
            "previous_value": repr(previous_value) if previous_value is not None else "none",
            "regression": str(decision.regression).lower(),
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, version, TAG_PREFIX + key, value[:5000])
    return decision


def _decide(
    policy: str,
    version: str,
    previous_version: str | None,
    new_value: float,
    previous_value: float | None,
    mode: str,
    min_improvement: float,
) -> PromotionDecision:
    """The pure decision: promote or not, why, and whether the new model is a regression."""
    sign = 1.0 if mode == "max" else -1.0
    comparable = previous_value is not None and not math.isnan(previous_value) and not math.isnan(new_value)
    improvement = sign * (new_value - previous_value) if comparable else None
    regression = improvement is not None and improvement < 0
    out = PromotionDecision(
        promoted=False,
        alias="",
        reason="",
        new_version=version,
        previous_version=previous_version,
        new_value=new_value,
        previous_value=previous_value,
        regression=regression,
    )
    versus = (
        f"{new_value:.6g} vs {previous_value:.6g} of version {previous_version} ({mode})"
        if comparable
        else f"{new_value:.6g}"
    )
    if previous_version == version:  # an earlier attempt of this run promoted it: still true
        out.promoted, out.reason = True, f"version {version} already holds the alias"
    elif policy == "Never":
        out.reason = f"policy Never: alias not moved ({versus})"
    elif policy == "Always":
        out.promoted, out.reason = True, f"policy Always ({versus})"
    elif previous_version is None:
        out.promoted, out.reason = True, "no version holds the alias yet"
    elif math.isnan(new_value):
        out.reason = "the new model's metric is NaN"
    elif not comparable:
        out.promoted = True
        out.reason = f"version {previous_version} has no usable value of the metric to compare with"
    elif improvement > 0 and improvement >= min_improvement - 1e-12:
        out.promoted = True
        out.reason = f"better by {improvement:.6g} (minimum {min_improvement:g}): {versus}"
    elif improvement > 0:
        out.reason = f"better by only {improvement:.6g}, below the minimum {min_improvement:g}: {versus}"
    elif improvement == 0:
        out.reason = f"no better: {versus}"
    else:
        out.reason = f"worse by {-improvement:.6g}: {versus}"
    return out


# ----------------------------------------------------------------------------- champion


def champion_info(
    model_name_or_registered: str, alias: str = DEFAULT_ALIAS, tracking_uri: str | None = None
) -> dict[str, Any] | None:
    """The version under ``alias`` (registered name or model kind), or None when there is none."""
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    names = [model_name_or_registered]
    if not model_name_or_registered.startswith(NAME_PREFIX):
        names.append(registered_name(model_name_or_registered))
    with mlflow_call(uri, f"read the {alias} of {model_name_or_registered}"):
        for name in names:
            current = _alias_version(client, name, alias)
            if current is None:
                continue
            run = _run_or_none(client, current.run_id)
            tags = dict(current.tags or {})
            # Version tags first; the run's tags cover versions registered by other tools.
            found = {**(run.data.tags if run else {}), **tags}
            seasons = str(found.get("seasons") or "")
            return {
                "registered_model": name,
                "alias": alias,
                "version": str(current.version),
                "run_id": current.run_id,
                "model_uri": f"models:/{name}/{current.version}",
                "metrics": dict(run.data.metrics) if run else {},
                "train_end_date": found.get("train_end_date"),
                "data_hash": found.get("data_hash"),
                "model": found.get("model"),
                "algorithm": found.get("algorithm"),
                "seasons": [int(x) for x in seasons.split(",") if x.strip().isdigit()],
                "created_at": current.creation_timestamp,
                "tags": tags,
            }
    return None
