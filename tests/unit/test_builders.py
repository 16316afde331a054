"""Builders field by field: what the trainer, the Job controller, Kueue and KubeRay rely on."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from pitwall_api import parse_training_run_spec
from pitwall_operator.builders.configmap import build_spec_configmap
from pitwall_operator.builders.events import build_event
from pitwall_operator.builders.job import build_job
from pitwall_operator.builders.meta import RunRef
from pitwall_operator.builders.raycluster import (
    build_ray_cluster,
    build_ray_token_secret,
    driver_env,
    head_address,
    is_ready,
    ray_settings,
)
from pitwall_operator.config import Settings

K8S_VERSION = "1.32"
RUN = RunRef("rw-2024", "f1", "uid-123", (("kueue.x-k8s.io/priority-class", "high"), ("team", "strategy")))
SETTINGS = Settings(default_data_claim="pitwall-data", default_mlflow_uri="http://mlflow:5000")


def spec(**extra) -> dict:
    raw = {"model": "race_winner", "algorithm": "xgboost", "data": {"seasons": [2022, 2023, 2024]}, **extra}
    return parse_training_run_spec(raw).to_dict()


def strict(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def env_of(job: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_job_runs_the_trainer_contract():
    job = build_job(RUN, spec(), SETTINGS)
    strict(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["name"] == "rw-2024-train" and job["metadata"]["namespace"] == "f1"
    assert container["command"] == ["pitwall-train"]
    assert container["args"] == ["run", "--spec", "/etc/pitwall/spec.yaml"]
    assert container["image"] == "ghcr.io/pitwall/trainer:0.1.0"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = env_of(job)
    assert env["PITWALL_TRAININGRUN_NAME"] == "rw-2024" and env["PITWALL_TRAININGRUN_NAMESPACE"] == "f1"
    assert env["PITWALL_DATA_DIR"] == "/data"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["PITWALL_CACHE_DIR"] == "/cache" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["spec"]["configMap"]["name"] == "rw-2024-spec"
    assert vols["data"]["persistentVolumeClaim"] == {"claimName": "pitwall-data", "readOnly": True}
    assert "emptyDir" in vols["cache"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["spec"]["mountPath"] == "/etc/pitwall" and mounts["data"]["readOnly"] is True


def test_job_security_retries_and_failure_policy():
    job = build_job(RUN, spec(runPolicy={"backoffLimit": 5, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60}), SETTINGS)
    strict(job)
    js = job["spec"]
    assert (js["backoffLimit"], js["activeDeadlineSeconds"], js["ttlSecondsAfterFinished"]) == (5, 600, 60)
    fail_job, ignore = js["podFailurePolicy"]["rules"]
    assert fail_job == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2]},
    }
    assert ignore["action"] == "Ignore" and ignore["onPodConditions"][0]["type"] == "DisruptionTarget"
    pod = js["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = pod["containers"][0]["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"] == {"drop": ["ALL"]}
    assert build_job(RUN, spec(), SETTINGS)["spec"]["backoffLimit"] == 3  # the API default


def test_job_labels_owner_and_kueue_passthrough():
    job = build_job(RUN, spec(queueName="f1-queue"), SETTINGS)
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "pitwall"
    assert labels["app.kubernetes.io/managed-by"] == "pitwall-operator"
    assert labels["app.kubernetes.io/component"] == "trainer"
    assert labels["pitwall.io/training-run"] == "rw-2024"
    assert labels["kueue.x-k8s.io/queue-name"] == "f1-queue"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    assert "team" not in labels  # only Kueue's labels pass through
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun", "name": "rw-2024",
        "uid": "uid-123", "controller": True, "blockOwnerDeletion": True,
    }


def test_job_passes_user_settings_through():
    s = spec(
        image="registry.local/trainer:dev",
        imagePullPolicy="Always",
        resources={"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
        env=[{"name": "SEASONS", "value": "2024"}, {"name": "MLFLOW_TRACKING_URI", "value": "http://other:5000"}],
        nodeSelector={"pool": "cpu"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        serviceAccountName="trainer",
        priorityClassName="batch-high",
        mlflow={"trackingUri": "http://spec-mlflow:5000"},
        data={"seasons": [2024], "source": {"pvc": {"claimName": "f1-data", "path": "ergast/v1"}}},
    )
    job = build_job(RUN, s, SETTINGS)
    strict(job)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.local/trainer:dev" and container["imagePullPolicy"] == "Always"
    assert container["resources"]["limits"]["memory"] == "16Gi"
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["tolerations"][0]["key"] == "dedicated"
    assert pod["serviceAccountName"] == "trainer" and pod["priorityClassName"] == "batch-high"
    env = env_of(job)
    assert env["SEASONS"] == "2024"
    assert env["MLFLOW_TRACKING_URI"] == "http://other:5000"  # the user's env wins, no duplicate
    assert [e["name"] for e in container["env"]].count("MLFLOW_TRACKING_URI") == 1
    assert env["PITWALL_DATA_DIR"] == "/data/ergast/v1"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "f1-data"


def test_job_fetch_source_has_no_data_volume_and_spec_mlflow_uri():
    s = spec(data={"seasons": [2024], "source": {"fetch": {"cacheClaimName": "f1-cache"}}},
             mlflow={"trackingUri": "http://spec-mlflow:5000"})
    job = build_job(RUN, s, SETTINGS)
    strict(job)
    vols = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert "data" not in vols and vols["cache"]["persistentVolumeClaim"]["claimName"] == "f1-cache"
    env = env_of(job)
    assert "PITWALL_DATA_DIR" not in env and env["MLFLOW_TRACKING_URI"] == "http://spec-mlflow:5000"


def test_job_without_any_default():
    job = build_job(RUN, spec(), Settings())
    env = env_of(job)
    assert "PITWALL_DATA_DIR" not in env and "MLFLOW_TRACKING_URI" not in env


def test_benchmark_command_override():
    job = build_job(RUN, spec(), Settings(command_override=("python", "-c", "pass")))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python"] and container["args"] == ["-c", "pass"]
    assert Settings.from_env({"PITWALL_TRAINER_COMMAND_OVERRIDE": "true"}).command_override == ("true",)


def test_settings_from_env():
    s = Settings.from_env({
        "PITWALL_TRAINER_IMAGE": "img:1", "PITWALL_DEFAULT_DATA_CLAIM": "d", "PITWALL_DEFAULT_MLFLOW_URI": "http://m",
        "PITWALL_METRICS_PORT": "0", "PITWALL_WORKER_LIMIT": "7", "PITWALL_NAMESPACES": "a, b",
    })
    assert (s.trainer_image, s.default_data_claim, s.default_mlflow_uri) == ("img:1", "d", "http://m")
    assert (s.metrics_port, s.worker_limit, s.namespaces) == (0, 7, ("a", "b"))
    default = Settings.from_env({})
    assert default.trainer_image == "ghcr.io/pitwall/trainer:0.1.0" and default.peering is None
    assert default.timer_interval == 30.0 and default.metrics_port == 8080
    assert Settings.from_env({"PITWALL_PEERING": "pitwall"}).peering == "pitwall"
    with pytest.raises(ValueError, match="PITWALL_WORKER_LIMIT"):
        Settings.from_env({"PITWALL_WORKER_LIMIT": "many"})


def test_spec_configmap_round_trips():
    s = spec(promotion={"policy": "Always"})
    cm = build_spec_configmap(RUN, s)
    strict(cm)
    assert cm["metadata"]["name"] == "rw-2024-spec"
    assert cm["metadata"]["labels"]["pitwall.io/training-run"] == "rw-2024"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-123"
    assert yaml.safe_load(cm["data"]["spec.yaml"]) == s
    assert parse_training_run_spec(yaml.safe_load(cm["data"]["spec.yaml"])).to_dict() == s


TUNED = {
    "engine": "ray",
    "numSamples": 8,
    "searchSpace": {"max_depth": {"type": "int", "low": 3, "high": 12}},
    "rayCluster": {"workers": 3, "workerResources": {"requests": {"cpu": "2"}}},
}


def test_ray_cluster_shape():
    s = spec(tuning=TUNED, queueName="f1-queue")
    assert ray_settings(s)["workers"] == 3
    rc = build_ray_cluster(RUN, s, SETTINGS)
    assert rc["apiVersion"] == "ray.io/v1" and rc["kind"] == "RayCluster"
    assert rc["metadata"]["name"] == "rw-2024-ray"
    assert rc["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "f1-queue"
    assert rc["metadata"]["ownerReferences"][0]["kind"] == "TrainingRun"
    assert rc["spec"]["rayVersion"] == "2.60.0"
    (group,) = rc["spec"]["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    worker = group["template"]["spec"]["containers"][0]
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert worker["image"] == head["image"] == "ghcr.io/pitwall/trainer:0.1.0"
    assert worker["resources"] == {"requests": {"cpu": "2"}}
    for pod in (rc["spec"]["headGroupSpec"]["template"]["spec"], group["template"]["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        c = pod["containers"][0]["securityContext"]
        assert c["allowPrivilegeEscalation"] is False and c["capabilities"]["drop"] == ["ALL"]
    # each pod template is a valid core/v1 PodTemplateSpec
    strict({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": group["template"]})


def test_ray_cluster_matches_kuberay_crd_schema():
    import jsonschema
    from pitwall_sandbox.build import kuberay_crds  # KubeRay's own CRD, from the pinned Go module

    (path,) = [p for p in kuberay_crds() if p.name == "ray.io_rayclusters.yaml"]
    crd = yaml.safe_load(path.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def close(node):  # a structural schema forbids unknown fields: make jsonschema do the same
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    jsonschema.validate(build_ray_cluster(RUN, spec(tuning=TUNED), SETTINGS)["spec"], schema)


def test_ray_only_for_ray_engine_with_workers():
    assert ray_settings(spec()) is None
    optuna = {"engine": "optuna", "searchSpace": {"max_depth": {"type": "int", "low": 3, "high": 12}}}
    assert ray_settings(spec(tuning=optuna)) is None
    local = {**TUNED, "rayCluster": {"workers": 0}}
    assert ray_settings(spec(tuning=local)) is None


def test_ray_readiness_and_head_address():
    assert not is_ready(None) and not is_ready({"status": {"state": "suspended"}})
    ready = {"status": {"state": "ready", "head": {"serviceIP": "None", "podIP": "10.1.0.5"}}}
    assert is_ready(ready) and head_address(RUN, ready) == "10.1.0.5:6379"  # headless Service: the pod's IP
    assert head_address(RUN, None) == "rw-2024-ray-head-svc.f1.svc:6379"
    assert driver_env(RUN, ready)["PITWALL_RAY_JOIN"] == "1"  # the driver joins as a node, at its pod's IP
    job = build_job(RUN, spec(tuning=TUNED), SETTINGS, extra_env=driver_env(RUN, ready), component="tuning-driver")
    strict(job)
    (pod_ip,) = [e for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "PITWALL_POD_IP"]
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert is_ready({"status": {"conditions": [{"type": "HeadPodReady", "status": "True"}]}})


def test_every_ray_process_of_a_run_authenticates_with_its_own_token():
    rc = build_ray_cluster(RUN, spec(tuning=TUNED), SETTINGS)
    driver = build_job(RUN, spec(tuning=TUNED), SETTINGS, extra_env=driver_env(RUN, None), component="tuning-driver")
    secret = build_ray_token_secret(RUN, "t" * 64)
    strict(secret)
    assert secret["metadata"]["name"] == "rw-2024-ray-token-uid-123"  # the uid: never a predecessor's token
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-123"
    pods = [rc["spec"]["headGroupSpec"]["template"]["spec"], rc["spec"]["workerGroupSpecs"][0]["template"]["spec"],
            driver["spec"]["template"]["spec"]]
    for pod in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "token"}}
        assert pod["serviceAccountName"] == "rw-2024-trainer"  # the run's own account, no shared one
    assert rc["spec"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"


def test_image_pull_secrets_reach_every_pod():
    s = spec(tuning=TUNED, imagePullSecrets=[{"name": "registry-creds"}])
    rc = build_ray_cluster(RUN, s, SETTINGS)
    for pod in (build_job(RUN, s, SETTINGS)["spec"]["template"]["spec"], rc["spec"]["headGroupSpec"]["template"]["spec"],
                rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]):
        assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]


def test_every_job_has_a_deadline():
    assert build_job(RUN, spec(), SETTINGS)["spec"]["activeDeadlineSeconds"] == 86400
    own = build_job(RUN, spec(runPolicy={"activeDeadlineSeconds": 600}), SETTINGS)
    assert own["spec"]["activeDeadlineSeconds"] == 600
    unbounded = Settings(default_deadline_seconds=0)
    assert "activeDeadlineSeconds" not in build_job(RUN, spec(), unbounded)["spec"]


def test_driver_job_gets_ray_address():
    job = build_job(RUN, spec(tuning=TUNED), SETTINGS, extra_env={"RAY_ADDRESS": "10.0.0.1:6379"}, component="tuning-driver")
    strict(job)
    assert env_of(job)["RAY_ADDRESS"] == "10.0.0.1:6379"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "tuning-driver"


def test_event_shape():
    ev = build_event({"name": "rw", "namespace": "f1", "uid": "u1"}, "Warning", "Failed", "x" * 5000, "2026-01-01T00:00:00Z")
    strict(ev | {"metadata": {"name": "rw.1", "namespace": "f1"}})
    assert ev["metadata"]["generateName"] == "rw." and len(ev["message"]) == 1024
    assert ev["involvedObject"] == {"apiVersion": "pitwall.io/v1alpha1", "kind": "TrainingRun", "name": "rw", "namespace": "f1", "uid": "u1"}
    assert ev["type"] == "Warning" and ev["reason"] == "Failed" and ev["source"]["component"] == "pitwall-operator"


def test_optuna_storage_secret_reaches_the_trainer_as_an_env_reference() -> None:
    from pitwall_operator.builders.job import trainer_env
    from pitwall_operator.builders.meta import RunRef
    from pitwall_operator.config import Settings

    spec = {"model": "race_winner", "data": {"seasons": [2024]},
            "tuning": {"engine": "optuna", "optuna": {"storageSecretRef": {"name": "optuna-db", "key": "url"}}}}
    env = {e["name"]: e for e in trainer_env(RunRef("r", "ns", "uid-1"), spec, Settings())}
    assert env["PITWALL_OPTUNA_STORAGE"]["valueFrom"] == {"secretKeyRef": {"name": "optuna-db", "key": "url"}}
    assert "value" not in env["PITWALL_OPTUNA_STORAGE"]  # the URL (with its password) stays in the Secret
