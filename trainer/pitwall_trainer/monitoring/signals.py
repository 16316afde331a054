"""The figures a RetrainPolicy decides on, for one model and its champion version.

- staleness: the newest race in the data vs the champion's `train_end_date` tag, and the race
  entries (rows the model learns from) that arrived after it;
- performance: the champion's accuracy on the last `windowRaces` races after its training date,
  next to the accuracy recorded when it was trained (its MLflow run metric);
- data drift: PSI of the key features, the champion's training window vs the races after it.

"Accuracy" is each model's accuracy-like, higher-is-better metric (ACCURACY_METRIC), so the
performance trigger reads the same for every model. With no champion yet every race is new:
the first model gets trained. Which triggers fire is decided by
`pitwall_api.triggers.fired_reasons`, the rule the operator applies too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pitwall_api.contract import POLICY_NAME_ENV, POLICY_NAMESPACE_ENV, RETRAINPOLICY_PLURAL
from pitwall_api.triggers import DEFAULT_TRIGGERS, SIGNAL_KEYS, fired_reasons

from pitwall_trainer.evaluation.metrics import model_metrics
from pitwall_trainer.features import load_feature_matrix
from pitwall_trainer.models.factory import FittedModel, get_spec, predict
from pitwall_trainer.monitoring.drift import KEY_FEATURES, feature_drift

log = logging.getLogger(__name__)

ACCURACY_METRIC = {"race_winner": "top1_accuracy", "quali_order": "spearman", "pit_window": "within_3_laps"}


@dataclass
class Champion:
    """What the monitor needs of the champion: version, training end, recorded metrics, the model."""

    version: str | None
    train_end_date: str | None
    metrics: dict[str, float]
    seasons: list[int]
    fitted: FittedModel | None = None
    load_error: str | None = None


def _date(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(pd.Timestamp(value).date())


def load_champion(model: str, info: dict[str, Any] | None, tracking_uri: str | None = None) -> Champion | None:
    """The champion's model from MLflow (XGBoost or sklearn flavour), or a load error to report."""
    if info is None:
        return None
    from pitwall_trainer.registry import mlflow_call, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    seasons_tag = (info.get("tags") or {}).get("seasons") or ""
    champ = Champion(
        version=info.get("version"),
        train_end_date=info.get("train_end_date"),
        metrics={k: float(v) for k, v in (info.get("metrics") or {}).items()},
        seasons=[int(s) for s in str(seasons_tag).split(",") if s.strip().isdigit()],
    )
    try:
        import mlflow.models

        with mlflow_call(uri, f"load {info['model_uri']}"):
            flavors = mlflow.models.get_model_info(info["model_uri"]).flavors
            if flavors.get("python_function", {}).get("loader_module") == "mlflow.pyfunc.model":
                import mlflow.pyfunc  # the trainer's served model: it holds the FittedModel itself

                served = mlflow.pyfunc.load_model(info["model_uri"]).unwrap_python_model()
                champ.fitted = served.fitted
                return champ
            if "xgboost" in flavors:
                import mlflow.xgboost

                estimator = mlflow.xgboost.load_model(info["model_uri"])
            else:
                import mlflow.sklearn

                estimator = mlflow.sklearn.load_model(info["model_uri"])
    except Exception as error:  # noqa: BLE001 - a model we cannot load still has staleness signals
        log.warning("cannot load the champion %s: %s", info.get("model_uri"), error)
        champ.load_error = str(error)[:500]
        return champ
    names = getattr(estimator, "feature_names_in_", None)
    features = [str(n) for n in names] if names is not None else list(get_spec(model).features)
    champ.fitted = FittedModel(model=model, algorithm=str(info.get("algorithm") or "xgboost"), params={},
                               estimator=estimator, feature_names=features)
    return champ


def recent_accuracy(model: str, fitted: FittedModel, rows: pd.DataFrame) -> float | None:
    """The accuracy metric of `fitted` on these feature rows (whole races), None when empty."""
    if rows.empty:
        return None
    pred = rows.join(predict(fitted, rows))
    value = model_metrics(model, pred).get(ACCURACY_METRIC[model])
    return None if value is None or pd.isna(value) else float(value)


def _races_after(frame: pd.DataFrame, cutoff: str | None) -> pd.DataFrame:
    return frame if cutoff is None else frame[frame["date"] > pd.Timestamp(cutoff)]


def compute_signals(
    model: str,
    frame: pd.DataFrame,
    champion: Champion | None,
    triggers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All signals for `model` over the feature rows `frame`; camelCase keys as in status.signals.

    The result holds the status fields (newRaces, driftScore, ...) plus detail for people
    (`detail`) and the trigger decision (`fired`: reason and message per trigger that fires).
    """
    triggers = DEFAULT_TRIGGERS if triggers is None else triggers
    spec = get_spec(model)
    eligible = frame[spec.rows(frame)]
    cutoff = champion.train_end_date if champion else None
    new = _races_after(eligible, cutoff)
    latest = eligible["date"].max() if not eligible.empty else None
    metric = ACCURACY_METRIC[model]
    out: dict[str, Any] = {
        "computedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "latestRaceDate": _date(latest),
        "newRaces": int(new["raceId"].nunique()),
        "newSamples": len(new),
    }
    detail: dict[str, Any] = {"model": model, "accuracyMetric": metric, "rows": len(eligible)}
    if champion is not None:
        out["championVersion"] = champion.version
        out["championTrainEndDate"] = champion.train_end_date
        baseline = champion.metrics.get(metric)
        if baseline is not None:
            out["baselineAccuracy"] = round(float(baseline), 6)
    window = int({**DEFAULT_TRIGGERS["performanceDrift"], **(triggers.get("performanceDrift") or {})}["windowRaces"])
    recent_ids = list(dict.fromkeys(new.sort_values("date", kind="stable")["raceId"]))[-window:]
    detail["windowRaces"] = window
    detail["recentRaces"] = len(recent_ids)
    if champion is not None and champion.fitted is not None and len(recent_ids) >= window:
        rows = frame[frame["raceId"].isin(recent_ids) & (frame["year"] >= spec.first_year)]
        value = recent_accuracy(model, champion.fitted, rows)
        if value is not None:
            out["recentAccuracy"] = round(value, 6)
    elif champion is not None and champion.load_error:
        detail["championLoadError"] = champion.load_error
    elif champion is not None:
        detail["performanceNote"] = f"{len(recent_ids)} races after the champion's training; {window} needed"
    if champion is not None and cutoff:
        seasons = set(champion.seasons)
        train = eligible[eligible["date"] <= pd.Timestamp(cutoff)]
        if seasons:
            train = train[train["year"].isin(seasons)]
        drift = feature_drift(train, new, KEY_FEATURES)
        if drift["score"] is not None:
            out["driftScore"] = drift["score"]
        detail["drift"] = drift
    out["fired"] = [{"reason": r, "message": m} for r, m in fired_reasons(out, triggers)]
    out["detail"] = detail
    return out


def monitor(
    model: str,
    data_dir: str | Path | None = None,
    registered_model_name: str | None = None,
    alias: str = "champion",
    tracking_uri: str | None = None,
    triggers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the champion from MLflow and the data folder, and compute the signals."""
    from pitwall_trainer.registry import champion_info

    get_spec(model)
    info = champion_info(registered_model_name or model, alias, tracking_uri)
    champion = load_champion(model, info, tracking_uri)
    frame = load_feature_matrix(data_dir).frame
    signals = compute_signals(model, frame, champion, triggers)
    signals["detail"]["registeredModel"] = (info or {}).get("registered_model") or registered_model_name
    signals["detail"]["alias"] = alias
    return signals


def status_signals(signals: dict[str, Any]) -> dict[str, Any]:
    """The status.signals block: only the CRD's fields; absent ones as null so a merge patch clears them."""
    return {k: signals.get(k) for k in SIGNAL_KEYS}


# --- data refresh and reporting to the RetrainPolicy ------------------------------------------------



def refresh_data(data_dir: str | Path, seasons: list[int], base_url: str | None = None) -> dict[str, Any]:
    """`pitwall-train data fetch` into the data folder; the status.signals.dataRefresh block.

    The fetcher validates a staged copy and swaps it in by renames, so a failure (API down, bad
    rows, a folder it refuses to replace) leaves the previous data as it was: the signals are
    then computed on that data and the failure is reported, not raised.
    """
    from pitwall_trainer.data.fetch import DEFAULT_BASE_URL, fetch_seasons

    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        summary = fetch_seasons(seasons, out=data_dir, base_url=base_url or DEFAULT_BASE_URL, show_progress=False)
    except Exception as error:  # noqa: BLE001 - any failure keeps the old data and is reported
        log.warning("data refresh failed, keeping the previous data: %s", error)
        return {"succeeded": False, "time": started, "message": f"{type(error).__name__}: {error}"[:1024]}
    rows = sum(summary.get("rows", {}).values())
    return {"succeeded": True, "time": started,
            "message": f"fetched seasons {','.join(map(str, seasons))}: {rows} rows"[:1024]}


class PolicyStatusReporter:
    """Patches one RetrainPolicy's status.signals (RBAC: patch retrainpolicies/status), best effort."""

    def __init__(self, name: str, namespace: str) -> None:
        from pitwall_trainer.reporting import StatusReporter

        self.name, self.namespace = name, namespace
        self._status = StatusReporter(name, namespace, plural=RETRAINPOLICY_PLURAL)

    @classmethod
    def from_env(cls, name: str | None = None, namespace: str | None = None) -> PolicyStatusReporter | None:
        import os

        name = name or os.environ.get(POLICY_NAME_ENV)
        if not name:
            return None
        return cls(name, namespace or os.environ.get(POLICY_NAMESPACE_ENV) or "default")

    def patch_signals(self, signals: dict[str, Any]) -> bool:
        """False (logged) when the API refused: the operator also reads the termination message."""
        return self._status.patch({"signals": status_signals(signals)})
