"""The RetrainPolicy's data-trigger decision, shared by the operator and the monitoring Job.

The monitor (`pitwall-train monitor`) computes the signals and says which triggers fire; the
operator decides again from the same signals in the policy's status. One rule, so the two agree.
"""

from __future__ import annotations

from typing import Any

from pitwall_api.retrainpolicy import AfterNewRace, DataDrift, NewData, PerformanceDrift

# The fields of status.signals (the CRD prunes anything else; the monitor writes these too).
SIGNAL_KEYS = ("computedAt", "championVersion", "latestRaceDate", "championTrainEndDate", "newRaces", "newSamples",
               "recentAccuracy", "baselineAccuracy", "driftScore", "dataRefresh")
# Trigger order when several fire at once: the first names the run.
REASON_ORDER = ("Schedule", "AfterNewRace", "PerformanceDrift", "DataDrift", "NewData", "Manual")

# Every data trigger with the API's defaults (what the monitor uses when told no triggers).
DEFAULT_TRIGGERS: dict[str, dict[str, Any]] = {
    "afterNewRace": AfterNewRace().model_dump(by_alias=True),
    "performanceDrift": PerformanceDrift().model_dump(by_alias=True),
    "dataDrift": DataDrift().model_dump(by_alias=True),
    "newData": NewData().model_dump(by_alias=True),
}


def _with_defaults(name: str, given: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_TRIGGERS[name], **{k: v for k, v in given.items() if v is not None}}


def fired_reasons(signals: dict[str, Any], triggers: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(reason, message) for every configured trigger the signals satisfy; camelCase in, as in the CRD.

    performanceDrift compares accuracy-like metrics (higher is better): recent < threshold × baseline.
    """
    out: list[tuple[str, str]] = []
    t = triggers or {}
    new_races, new_samples = signals.get("newRaces"), signals.get("newSamples")
    since = signals.get("championTrainEndDate") or "the start of the data (no champion yet)"
    if t.get("afterNewRace") is not None and _with_defaults("afterNewRace", t["afterNewRace"])["enabled"] and new_races:
        out.append(("AfterNewRace", f"{new_races} race(s) after {since}, latest {signals.get('latestRaceDate')}"))
    recent, baseline = signals.get("recentAccuracy"), signals.get("baselineAccuracy")
    if t.get("performanceDrift") is not None and recent is not None and baseline is not None:
        perf = _with_defaults("performanceDrift", t["performanceDrift"])
        threshold = float(perf["threshold"])
        if recent < threshold * baseline:
            out.append(("PerformanceDrift", f"recent accuracy {recent:.4f} < {threshold:g} x baseline {baseline:.4f} "
                                            f"over the last {perf['windowRaces']} races"))
    score = signals.get("driftScore")
    if t.get("dataDrift") is not None and score is not None:
        threshold = float(_with_defaults("dataDrift", t["dataDrift"])["threshold"])
        if score > threshold:
            out.append(("DataDrift", f"drift score (PSI) {score:.4f} > {threshold:g}"))
    if t.get("newData") is not None and new_samples is not None:
        minimum = int(_with_defaults("newData", t["newData"])["minSamples"])
        if new_samples >= minimum:
            out.append(("NewData", f"{new_samples} new samples >= {minimum} since {since}"))
    return out


def ordered(reasons: list[str]) -> list[str]:
    """Distinct reasons in REASON_ORDER (what status.lastTriggerReasons lists)."""
    return [r for r in REASON_ORDER if r in set(reasons)]
