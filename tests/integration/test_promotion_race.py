"""Two runs of one model promoting at the same moment, against a real MLflow server and the
sandbox's real API server (the Lease), and a retried pod that does not register a second version."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest
import yaml
from mlflow.tracking import MlflowClient
from pitwall_trainer import promotion_guard, registry

pytestmark = pytest.mark.integration
LEASE = "pitwall-promotion"


def both_read_the_old_champion(monkeypatch: pytest.MonkeyPatch, worse_version: str) -> None:
    """Make the race happen every time: each promoter waits (up to 3 s) until the other has read
    the alias too, and the worse one then moves second; a lock makes the second one wait instead."""
    barrier = threading.Barrier(2, timeout=3)
    read = registry.promotion._alias_version

    def slow_read(client, name, alias):
        current = read(client, name, alias)
        with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for the lease, or is done
            barrier.wait()
        return current

    real_set = MlflowClient.set_registered_model_alias

    def late_set(self, name, alias, version):
        if str(version) == worse_version:
            time.sleep(1.0)  # the worse one moves the alias last
        return real_set(self, name, alias, version)

    monkeypatch.setattr(registry.promotion, "_alias_version", slow_read)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", late_set)


def promote_together(records_and_results, uri: str) -> list:
    decisions: list = [None, None]
    errors: list[BaseException] = []

    def promote(i: int) -> None:
        try:
            record, result = records_and_results[i]
            decisions[i] = registry.promote(record, result, tracking_uri=uri)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test
            errors.append(error)

    threads = [threading.Thread(target=promote, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return decisions


def test_the_better_of_two_concurrent_promotions_ends_as_champion(cluster, mlflow_server, make_result, monkeypatch):
    cluster.activate(monkeypatch)
    namespace = "default"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE, "namespace": namespace},
             "spec": {}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(lease))
    monkeypatch.setenv(promotion_guard.LEASE_ENV, LEASE)
    monkeypatch.setenv(promotion_guard.NAMESPACE_ENV, namespace)
    model = f"race_{uuid.uuid4().hex[:8]}"
    old = make_result("sklearn", model=model, metrics={"top1_accuracy": 0.40})
    registry.promote(registry.log_and_register(old, tracking_uri=mlflow_server), old, tracking_uri=mlflow_server)
    better, worse = (make_result("sklearn", model=model, metrics={"top1_accuracy": m}) for m in (0.60, 0.50))
    pairs = [(registry.log_and_register(r, tracking_uri=mlflow_server), r) for r in (better, worse)]
    both_read_the_old_champion(monkeypatch, worse_version=pairs[1][0].model_version)

    decided_better, decided_worse = promote_together(pairs, mlflow_server)

    champion = registry.champion_info(model, tracking_uri=mlflow_server)
    assert champion["version"] == pairs[0][0].model_version, (decided_better, decided_worse)
    assert decided_better.promoted
    # One at a time: whichever took the lease second compared itself with the first one's choice,
    # not with the old champion (without the lease both compare with version 1).
    compared_with_old = [d.previous_version for d in (decided_better, decided_worse)].count("1")
    assert compared_with_old == 1, (decided_better, decided_worse)
    if decided_worse.previous_version == "1":  # the worse one went first: promoted, then superseded
        assert decided_better.previous_version == decided_worse.new_version
    else:  # the better one went first: the worse one says what it lost to
        assert not decided_worse.promoted and decided_worse.previous_version == decided_better.new_version
    held = cluster.kubectl_json("get", "lease", LEASE, "-n", namespace)
    assert not held["spec"].get("holderIdentity")  # released


def test_a_retried_pod_reuses_the_version_its_run_registered(mlflow_server, make_result, monkeypatch):
    monkeypatch.setenv(promotion_guard.RUN_UID_ENV, f"uid-{uuid.uuid4().hex}")
    model = f"retry_{uuid.uuid4().hex[:8]}"
    first = registry.log_and_register(make_result("sklearn", model=model), tracking_uri=mlflow_server)
    again = registry.log_and_register(make_result("sklearn", model=model), tracking_uri=mlflow_server)
    assert again.model_version == first.model_version and again.run_id == first.run_id
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert len(client.search_model_versions(f"name='{again.model_name}'")) == 1
    monkeypatch.setenv(promotion_guard.RUN_UID_ENV, f"uid-{uuid.uuid4().hex}")  # another run: a new version
    other = registry.log_and_register(make_result("sklearn", model=model), tracking_uri=mlflow_server)
    assert other.model_version != first.model_version
