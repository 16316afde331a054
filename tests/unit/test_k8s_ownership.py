"""Create is idempotent only for our own children: a name can outlive its owner."""

from __future__ import annotations

import pytest
from pitwall_operator import k8s

JOB = {"apiVersion": "batch/v1", "kind": "Job",
       "metadata": {"name": "rw-train", "namespace": "f1", "ownerReferences": [{"uid": "new-uid"}]}}


def fake_api(monkeypatch, existing: dict | None) -> list[str]:
    calls: list[str] = []

    def request(method, path, body=None, query=None, content_type=None):
        calls.append(method)
        if method == "POST":
            raise k8s.ApiError(409, "already exists")
        if existing is None:
            raise k8s.ApiError(404, "not found")
        return existing

    monkeypatch.setattr(k8s, "request", request)
    return calls


def test_a_409_for_our_own_child_returns_it(monkeypatch) -> None:
    mine = {**JOB, "status": {"active": 1}}
    fake_api(monkeypatch, mine)
    assert k8s.create(JOB) == (mine, False)


def test_a_predecessors_child_is_never_taken_as_ours(monkeypatch) -> None:
    """The recreated run must not report the old run's Job (its result, its failure)."""
    old = {**JOB, "metadata": {**JOB["metadata"], "ownerReferences": [{"uid": "old-uid"}]}}
    fake_api(monkeypatch, old)
    with pytest.raises(k8s.StaleChild, match="old-uid") as raised:
        k8s.create(JOB)
    assert raised.value.retryable  # waited out: the garbage collector removes it


def test_an_object_we_may_not_read_back_is_not_read(monkeypatch) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rw-ray-token-1234", "namespace": "f1"}}
    calls = fake_api(monkeypatch, None)
    assert k8s.create(secret, read_back=False) == (secret, False)
    assert calls == ["POST"]


def test_owned_by_needs_the_uid_not_the_name() -> None:
    assert k8s.owned_by(JOB, "new-uid")
    assert not k8s.owned_by(JOB, "old-uid") and not k8s.owned_by(None, "new-uid") and not k8s.owned_by(JOB, "")


def test_suspending_drops_the_spec_configmap_so_an_edit_made_meanwhile_is_what_resumes(monkeypatch) -> None:
    from pitwall_operator.handlers import reconcile as rc

    deleted: list[tuple[str, str]] = []
    monkeypatch.setattr(k8s, "delete", lambda api_version, kind, namespace, name: deleted.append((kind, name)) or True)
    rc.delete_children({"metadata": {"name": "rw", "namespace": "f1", "uid": "u"}})
    assert ("ConfigMap", "rw-spec") in deleted and ("Job", "rw-train") in deleted


def test_a_predecessors_child_is_removed_only_when_the_operator_made_it_for_this_name(monkeypatch) -> None:
    from pitwall_operator.builders.meta import RunRef
    from pitwall_operator.handlers import reconcile as rc

    deleted: list[str] = []
    monkeypatch.setattr(k8s, "delete", lambda api_version, kind, namespace, name: deleted.append(name) or True)
    run = RunRef("rw", "f1", "new-uid")
    ours = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "rw-train", "labels": {
        "app.kubernetes.io/managed-by": "pitwall-operator", "pitwall.io/training-run": "rw"}}}
    assert rc._remove_stale(k8s, run, ours) and deleted == ["rw-train"]
    someone_elses = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "rw-train", "labels": {}}}
    assert not rc._remove_stale(k8s, run, someone_elses) and deleted == ["rw-train"]
