"""Tenancy on the real API server: per-run trainer rights, Secrets by name, admission of images and
ServiceAccounts. Each check is the authorizer's or the admission chain's answer, not a rendered file."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml
from pitwall_operator.builders.meta import RunRef
from pitwall_operator.builders.trainer_access import build_trainer_access
from pitwall_operator.config import Settings

from tests.e2e.conftest import NAMESPACE, OPERATOR_NAMESPACE, apply, delete_run, example_run, get_run
from tests.plugins.cluster import Cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPERATOR = f"system:serviceaccount:{OPERATOR_NAMESPACE}:pitwall-operator"


def suspended_run(name: str) -> dict[str, Any]:
    """A run the operator leaves alone (no Job): these tests need the object, not training."""
    return example_run(name, suspend=True)


def status_patch(cluster: Cluster, run: str, subject: str) -> Any:
    """`kubectl patch --subresource=status` as `subject`: the request a trainer pod makes."""
    patch = {"status": {"progress": {"percent": 1, "message": f"written by {subject}"}}}
    return cluster.kubectl("patch", "trainingrun", run, "-n", NAMESPACE, "--subresource=status", "--type=merge",
                           "-p", json.dumps(patch), "--as", subject, check=False)


def create_as(cluster: Cluster, subject: str, objs: list[dict[str, Any]]) -> Any:
    text = yaml.safe_dump_all(objs)
    return cluster.kubectl("create", "-f", "-", "--as", subject, input=text, check=False)


@pytest.fixture
def two_runs(cluster, operator):
    names = [f"ten-{uuid.uuid4().hex[:5]}" for _ in range(2)]
    for name in names:
        apply(cluster, suspended_run(name))
    yield [get_run(cluster, name) for name in names]
    for name in names:
        delete_run(cluster, name)


def test_a_trainer_can_write_only_its_own_runs_status(cluster, two_runs):
    mine, theirs = two_runs
    run = RunRef.from_body(mine)
    objs = build_trainer_access(run, {}, Settings())
    # the operator's own RBAC lets it create them (it holds every rule it grants: no escalation)
    created = create_as(cluster, OPERATOR, objs)
    assert created.returncode == 0, created.stderr
    account = f"system:serviceaccount:{NAMESPACE}:{run.name}-trainer"
    wait_for(lambda: status_patch(cluster, run.name, account).returncode == 0, timeout=30,
             what="the per-run account patching its own run's status")
    refused = status_patch(cluster, theirs["metadata"]["name"], account)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    # owned by the run: deleting it removes the account, Role and binding (garbage collector)
    delete_run(cluster, run.name)

    def gone() -> bool:
        return all(cluster.kubectl("get", kind, f"{run.name}-trainer", "-n", NAMESPACE, check=False).returncode != 0
                   for kind in ("serviceaccount", "role", "rolebinding"))
    wait_for(gone, timeout=90, what="the run's access objects garbage-collected")


def can_i(cluster: Cluster, subject: str, *args: str) -> bool:
    return cluster.kubectl("auth", "can-i", *args, "--as", subject, check=False).stdout.strip() == "yes"


def test_the_operator_reads_only_the_named_webhook_secret_where_runs_are(cluster, operator):
    assert can_i(cluster, OPERATOR, "get", "secret/pitwall-slack", "-n", NAMESPACE)
    assert not can_i(cluster, OPERATOR, "get", "secret/mlflow-credentials", "-n", NAMESPACE)
    assert not can_i(cluster, OPERATOR, "get", "secrets", "-n", NAMESPACE)
    assert not can_i(cluster, OPERATOR, "get", "secret/pitwall-slack", "-n", "kube-system")


def refusal(cluster: Cluster, doc: dict[str, Any]) -> str:
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc), check=False)
    return "" if result.returncode == 0 else result.stderr


def test_admission_refuses_a_foreign_image_or_account_with_a_clear_message(cluster, operator):
    name = f"adm-{uuid.uuid4().hex[:5]}"
    assert refusal(cluster, suspended_run(name)) == ""  # the operator's image: admitted
    message = refusal(cluster, example_run(name, image="docker.io/attacker/miner:latest"))
    assert "ValidatingAdmissionPolicy" in message and "spec.image docker.io/attacker/miner:latest is not allowed" in message
    assert "admission.allowedImages" in message
    message = refusal(cluster, example_run(name, serviceAccountName="default"))
    assert "spec.serviceAccountName default is not allowed" in message, message
    policy = {"apiVersion": "pitwall.io/v1alpha1", "kind": "RetrainPolicy",
              "metadata": {"name": name, "namespace": NAMESPACE},
              "spec": {"schedule": "0 6 * * 1", "template": {"spec": {**example_run(name)["spec"],
                                                                     "image": "evil/trainer:1"}}}}
    assert "spec.image evil/trainer:1 is not allowed" in refusal(cluster, policy)
