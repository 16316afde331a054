"""core/v1 Events about a TrainingRun: what `kubectl describe tr` and `kubectl events` show."""

from __future__ import annotations

from typing import Any

from pitwall_operator.config import GROUP, KIND, VERSION

COMPONENT = "pitwall-operator"
MAX_MESSAGE = 1024  # the API server truncates longer Event messages


def build_event(
    run_meta: dict[str, Any], event_type: str, reason: str, message: str, now: str, instance: str = COMPONENT
) -> dict[str, Any]:
    """An Event for the run (`type` Normal or Warning), named `<run>.<random>` by generateName."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    namespace = run_meta.get("namespace") or "default"
    involved = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": run_meta["name"],
        "namespace": namespace,
    }
    if run_meta.get("uid"):
        involved["uid"] = run_meta["uid"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{run_meta['name']}.", "namespace": namespace},
        "involvedObject": involved,
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
