"""One RetrainPolicy pass against an in-memory API: what it creates when a status write fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pitwall_operator import k8s
from pitwall_operator import retrain_policy as rp
from pitwall_operator.builders import retrain as rt
from pitwall_operator.handlers import retrainpolicy as handler

T_CREATED = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


class FakeApi:
    """TrainingRuns by name; the policy's status; `failing_patches` status writes answer 500."""

    def __init__(self, failing_patches: int = 0) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self.failing_patches = failing_patches
        self.deleted: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(k8s, "list_objects", lambda api_version, kind, namespace, selector:
                            list(self.runs.values()) if kind == "TrainingRun" else [])
        monkeypatch.setattr(k8s, "create", self.create)
        monkeypatch.setattr(k8s, "delete", self.delete)
        monkeypatch.setattr(k8s, "patch_policy_status", self.patch)
        monkeypatch.setattr(k8s, "post_event", lambda event: None)

    def create(self, obj: dict[str, Any], **_: Any) -> tuple[dict[str, Any], bool]:
        name = obj["metadata"]["name"]
        if name in self.runs:
            return self.runs[name], False
        self.runs[name] = obj
        return obj, True

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.deleted.append(name)
        return self.runs.pop(name, None) is not None

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.failing_patches:
            self.failing_patches -= 1
            raise k8s.ApiError(500, "etcdserver: request timed out")
        self.status.update({k: v for k, v in patch.items() if v is not None})
        return {}


def policy(concurrency: str = "Allow") -> dict[str, Any]:
    spec = {"schedule": "0 * * * *", "concurrencyPolicy": concurrency,
            "template": {"spec": {"model": "race_winner", "data": {"seasons": [2023, 2024]}}}}
    return {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy",
            "metadata": {"name": "hourly", "namespace": "f1", "uid": "uid-rp", "generation": 1,
                         "creationTimestamp": "2026-12-01T00:00:00Z"}, "spec": spec}


def test_a_failed_status_write_never_creates_a_second_run_for_the_same_tick(monkeypatch) -> None:
    api = FakeApi(failing_patches=1)
    api.install(monkeypatch)
    body = policy()
    with pytest.raises(k8s.ApiError):  # the run is created, then the status write fails
        handler.evaluate(body, now=datetime(2026, 12, 1, 1, 0, 58, tzinfo=UTC))
    assert list(api.runs) == ["hourly-20261201-0100-sched"]
    handler.evaluate(body, now=datetime(2026, 12, 1, 1, 1, 3, tzinfo=UTC))  # the retry, a minute later
    assert list(api.runs) == ["hourly-20261201-0100-sched"]  # the tick names the run, not the clock
    assert api.status["lastScheduleTime"] == "2026-12-01T01:00:00Z"


def test_replace_keeps_a_run_that_has_registered_its_model(monkeypatch) -> None:
    api = FakeApi()
    api.install(monkeypatch)
    body = policy("Replace")
    for name, version in (("hourly-20261201-0000-sched", "4"), ("hourly-20261201-0030-manual", None)):
        run = rt.build_training_run(rp.PolicyRef.from_body(body), body["spec"], T_CREATED, ["Schedule"])
        run["metadata"]["name"] = name
        run["status"] = {"state": "Running", **({"mlflow": {"modelVersion": version}} if version else {})}
        api.runs[name] = run
    body["status"] = {"activeRuns": sorted(api.runs), "lastScheduleTime": "2026-12-01T00:00:00Z"}
    handler.evaluate(body, now=datetime(2026, 12, 1, 1, 0, 5, tzinfo=UTC))
    assert api.deleted == ["hourly-20261201-0030-manual"]  # not the one whose version 4 is registered
    assert "hourly-20261201-0000-sched" in api.runs and "hourly-20261201-0100-sched" in api.runs


def test_replace_rule_is_pure() -> None:
    verdict = rp.concurrency("Replace", ["a", "b"], {"a"})
    assert verdict.create and verdict.delete == ["b"] and "keeping a" in verdict.reason
