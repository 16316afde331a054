"""The in-pod reporter patches only its TrainingRun's status, through a real HTTP API."""

from __future__ import annotations

import json

from pitwall_trainer.progress import ProgressUpdate
from pitwall_trainer.reporting import StatusReporter

from tests.plugins.cluster import Cluster, wait_for

RUN = {
    "apiVersion": "pitwall.io/v1alpha1",
    "kind": "TrainingRun",
    "metadata": {"name": "reporting-probe"},
    "spec": {"model": "race_winner", "data": {"seasons": [2024]}, "suspend": True},
}


def test_progress_and_result_reach_the_status_and_nothing_else(cluster: Cluster, cluster_namespace: str) -> None:
    from kubernetes import client

    cluster.kubectl("apply", "-n", cluster_namespace, "-f", "-", input=json.dumps(RUN))
    api = client.CustomObjectsApi(cluster.api_client())
    reporter = StatusReporter("reporting-probe", cluster_namespace, min_interval=60, api=api)

    reporter.progress(ProgressUpdate(1, 4, "fold 1/4", 0.4, 0.4, 30))
    reporter.progress(ProgressUpdate(2, 4, "fold 2/4", 0.5, 0.5, 20))  # rate-limited: dropped
    reporter.progress(ProgressUpdate(4, 4, "done", 0.6, 0.6, 0))  # the last one always goes
    assert reporter.patch({"metrics": {"top1_accuracy": 0.6}})

    def status() -> dict:
        return cluster.kubectl_json("get", "trainingrun", "reporting-probe", "-n", cluster_namespace).get("status") or {}

    got = wait_for(lambda: status() if (status().get("progress") or {}).get("percent") == 100 else None,
                   what="progress 100%")
    assert got["progress"]["message"] == "done" and got["progress"]["bestMetric"] == 0.6
    assert got["metrics"] == {"top1_accuracy": 0.6}
    body = cluster.kubectl_json("get", "trainingrun", "reporting-probe", "-n", cluster_namespace)
    assert body["spec"]["suspend"] is True  # the spec is untouched


def test_a_missing_resource_is_logged_not_raised(cluster: Cluster, cluster_namespace: str) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(cluster.api_client())
    reporter = StatusReporter("does-not-exist", cluster_namespace, api=api)
    assert reporter.patch({"progress": {"percent": 5}}) is False
