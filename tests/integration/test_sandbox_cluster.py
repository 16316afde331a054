"""The sandbox must behave as a cluster does, or every e2e test built on it proves nothing.

These tests pin the contract between the process kubelet (`sandbox/pitwall_sandbox/kubelet.py`,
`pods.py`) and the real control plane: what reaches a container (env, volumes, the projected
service-account token), what the kubelet reports back (termination messages, exit codes, restarts,
logs), how pods are stopped, and what the real Job, TTL and garbage-collector controllers do with
the pods it runs. They use only the real kubectl, so they also run against a real cluster
(`--kubeconfig`), except the few that need the sandbox's host folders or pod network.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.cluster import Cluster, wait_for

pytestmark = [pytest.mark.integration]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINAL = ("Succeeded", "Failed")


# -- helpers -----------------------------------------------------------------------------------


def apply(cluster: Cluster, namespace: str, *docs: dict[str, Any]) -> None:
    items = [{**doc, "metadata": {**doc["metadata"], "namespace": namespace}} for doc in docs]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def container(name: str, script: str, program: str = "sh", **extra: Any) -> dict[str, Any]:
    """A container running `program -c script` (sh or python3: the process runs on the sandbox's host)."""
    return {"name": name, "image": "busybox", "command": [program, "-c", script], **extra}


def pod(name: str, *containers: dict[str, Any], restart: str = "Never", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": list(containers), **spec}}


def job(name: str, script: str, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                                           "containers": [container("main", script)]}}, **spec}}


def get_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "pod", name, "-n", namespace)


def wait_pod_done(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The pod once its phase is Succeeded or Failed."""

    def done() -> dict[str, Any] | None:
        current = get_pod(cluster, namespace, name)
        return current if (current.get("status") or {}).get("phase") in TERMINAL else None

    return wait_for(done, timeout=timeout, interval=0.3, what=f"pod {namespace}/{name} to finish")


def wait_running(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The pod once every container is running."""

    def running() -> dict[str, Any] | None:
        current = get_pod(cluster, namespace, name)
        statuses = (current.get("status") or {}).get("containerStatuses") or []
        return current if statuses and all("running" in s["state"] for s in statuses) else None

    return wait_for(running, timeout=timeout, interval=0.3, what=f"pod {namespace}/{name} running")


def statuses(current: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in current["status"]["containerStatuses"]}


def terminated(current: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    status = statuses(current)[name] if name else current["status"]["containerStatuses"][0]
    assert "terminated" in status["state"], f"container not terminated: {status}"
    return status["state"]["terminated"]


def gone(cluster: Cluster, kind: str, namespace: str, name: str) -> bool:
    found = cluster.kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return found.stdout.strip() == ""


def job_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return cluster.kubectl_json("get", "pods", "-n", namespace, "-l", f"job-name={name}")["items"]


def wait_job_finished(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    """The Job's terminal condition (Complete or Failed) once it has one."""

    def finished() -> dict[str, Any] | None:
        current = cluster.kubectl_json("get", "job", name, "-n", namespace)
        for cond in (current.get("status") or {}).get("conditions") or []:
            if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                return {"condition": cond, "job": current}
        return None

    return wait_for(finished, timeout=timeout, interval=0.5, what=f"job {namespace}/{name} to finish")


def unique(base: str) -> str:
    return f"{base}-{uuid.uuid4().hex[:5]}"


# -- what reaches the container ----------------------------------------------------------------


def test_env_value_from_secret_configmap_and_pod_fields_reaches_the_process(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns,
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    env = [
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "COMBINED", "value": "$(POD_NAME)-$(MODE)"},  # dependent variables expand in order
    ]
    script = ('printf "%s|%s|%s|%s|%s|%s" "$SECRET" "$MODE" "$POD_NAME" "$POD_NS" "$POD_IP" "$COMBINED"'
              " > /dev/termination-log")
    apply(cluster, ns, pod("env", container("main", script, env=env)))

    done = wait_pod_done(cluster, ns, "env")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    pod_ip = done["status"]["podIP"]
    assert pod_ip
    assert terminated(done)["message"] == f"s3cret|fast|env|{ns}|{pod_ip}|env-fast"


def test_configmap_secret_and_emptydir_volumes_are_mounted_and_working_dir_is_honoured(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns,
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
           "stringData": {"password": "s3cret", "user": "alice"}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
           "data": {"greeting": "hello", "unused": "not projected"}})
    volumes = [
        {"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "greeting", "path": "sub/greeting.txt"}]}},
        {"name": "sec", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    mounts = [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"},
              {"name": "scratch", "mountPath": "/scratch"}]
    init = container("fill", "echo from-init > /scratch/init.txt", volumeMounts=mounts)
    script = ("set -e; echo from-cwd > cwd.txt; "  # relative to workingDir, i.e. into the emptyDir
              "{ cat /etc/cfg/sub/greeting.txt; echo; cat /etc/sec/password; echo; cat /etc/sec/user; echo; "
              "cat /scratch/init.txt /scratch/cwd.txt; "
              "if [ -e /etc/cfg/unused ]; then echo unused-projected; fi; } > /dev/termination-log")
    main = container("main", script, volumeMounts=mounts, workingDir="/scratch")
    apply(cluster, ns, pod("volumes", main, initContainers=[init], volumes=volumes))

    done = wait_pod_done(cluster, ns, "volumes")
    message = terminated(done).get("message", "")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert message.splitlines() == ["hello", "s3cret", "alice", "from-init", "from-cwd"]


def test_projected_service_account_token_authenticates_as_the_default_service_account(cluster, cluster_namespace):
    ns = cluster_namespace
    # A real kubelet sets KUBERNETES_SERVICE_HOST/PORT; the sandbox does not (no kube-proxy: the
    # `kubernetes` ClusterIP does not route) and gives the API server's address in $KUBECONFIG instead
    # (sandbox/README.md). The token, CA and namespace come from the projected volume either way.
    script = f"""
import json, os, ssl, urllib.error, urllib.request
host = os.environ.get('KUBERNETES_SERVICE_HOST')
if host:
    server = 'https://' + host + ':' + os.environ['KUBERNETES_SERVICE_PORT']
else:
    import yaml
    server = yaml.safe_load(open(os.environ['KUBECONFIG']))['clusters'][0]['cluster']['server']
token = open('{SA_DIR}/token').read().strip()
namespace = open('{SA_DIR}/namespace').read().strip()
context = ssl.create_default_context(cafile='{SA_DIR}/ca.crt')

def call(method, path, body=None):
    request = urllib.request.Request(server + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={{'Authorization': 'Bearer ' + token,
                                              'Content-Type': 'application/json'}})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)

review = call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
              {{'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}})
pods = call('GET', '/api/v1/namespaces/' + namespace + '/pods')
result = {{'namespace': namespace, 'review_code': review[0], 'user': review[1].get('status', {{}}).get('userInfo'),
          'pods_code': pods[0], 'pods_reason': pods[1].get('reason')}}
open('/dev/termination-log', 'w').write(json.dumps(result))
"""
    apply(cluster, ns, pod("whoami", container("main", script, program="python3",
                                               terminationMessagePolicy="FallbackToLogsOnError")))

    done = wait_pod_done(cluster, ns, "whoami")
    message = terminated(done).get("message", "")
    assert done["status"]["phase"] == "Succeeded", message
    result = json.loads(message)
    assert result["namespace"] == ns
    assert result["review_code"] == 201, result
    user = result["user"]
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"} <= set(user["groups"])
    # a bound token (TokenRequest with the pod as bound object), as the kubelet's projection makes it
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["whoami"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [done["metadata"]["uid"]]
    # RBAC is enforced for that identity: the default ServiceAccount may not list pods
    assert (result["pods_code"], result["pods_reason"]) == (403, "Forbidden"), result


# -- what the kubelet reports ------------------------------------------------------------------


def test_termination_message_is_capped_at_4096_bytes_and_exit_reasons_are_reported(cluster, cluster_namespace):
    ns = cluster_namespace
    big = container("big", "open('/dev/termination-log', 'w').write('x' * 10240)", program="python3")
    fails = container("fails", "echo bye; exit 3")
    apply(cluster, ns, pod("ending", big, fails))

    done = wait_pod_done(cluster, ns, "ending")
    assert done["status"]["phase"] == "Failed"  # one container failed and restartPolicy is Never
    ok, bad = terminated(done, "big"), terminated(done, "fails")
    assert (ok["exitCode"], ok["reason"]) == (0, "Completed")
    assert (bad["exitCode"], bad["reason"]) == (3, "Error")
    message = ok["message"]
    assert 0 < len(message.encode()) <= 4096
    assert set(message) == {"x"}


def test_restart_policy_on_failure_restarts_the_container_until_it_succeeds(cluster, cluster_namespace):
    ns = cluster_namespace
    script = ("if [ -e /state/failed-once ]; then echo second-run; exit 0; fi; "
              "touch /state/failed-once; echo first-run; exit 1")
    main = container("main", script, volumeMounts=[{"name": "state", "mountPath": "/state"}])
    apply(cluster, ns, pod("flaky", main, restart="OnFailure", volumes=[{"name": "state", "emptyDir": {}}]))

    done = wait_pod_done(cluster, ns, "flaky", timeout=90)  # the kubelet's back-off is 10 s
    status = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert status["restartCount"] == 1
    assert (status["state"]["terminated"]["exitCode"], status["state"]["terminated"]["reason"]) == (0, "Completed")
    assert (status["lastState"]["terminated"]["exitCode"], status["lastState"]["terminated"]["reason"]) == (1, "Error")
    assert cluster.kubectl("logs", "flaky", "-n", ns).stdout == "second-run\n"
    assert cluster.kubectl("logs", "flaky", "-n", ns, "--previous").stdout == "first-run\n"


def test_restart_policy_never_failing_container_fails_the_pod(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, pod("once", container("main", "exit 1")))

    done = wait_pod_done(cluster, ns, "once")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["containerStatuses"][0]["restartCount"] == 0
    assert (terminated(done)["exitCode"], terminated(done)["reason"]) == (1, "Error")


def test_kubectl_logs_returns_the_output_and_honours_tail(cluster, cluster_namespace):
    ns = cluster_namespace
    script = "for i in 1 2 3 4; do echo line-$i; done; sleep 0.2; echo line-5-stderr >&2"
    apply(cluster, ns, pod("talker", container("main", script)))

    wait_pod_done(cluster, ns, "talker")
    lines = ["line-1", "line-2", "line-3", "line-4", "line-5-stderr"]
    assert cluster.kubectl("logs", "talker", "-n", ns).stdout.splitlines() == lines
    assert cluster.kubectl("logs", "talker", "-n", ns, "--tail=2").stdout.splitlines() == lines[-2:]
    assert cluster.kubectl("logs", "talker", "-n", ns, "-c", "main", "--tail=1").stdout == "line-5-stderr\n"


# -- stopping pods -----------------------------------------------------------------------------


def test_deleting_a_pod_sends_sigterm_and_its_trap_runs(cluster, cluster_namespace, tmp_path: Path):
    cluster.require_sandbox("hostPath volumes are folders of the test's host")
    ns = cluster_namespace
    tmp_path.chmod(0o777)
    script = ("trap 'echo got-sigterm > /marker/sigterm; exit 0' TERM; "
              "echo up > /marker/started; while true; do sleep 0.2; done")
    main = container("main", script, volumeMounts=[{"name": "marker", "mountPath": "/marker"}])
    spec = pod("trapper", main, volumes=[{"name": "marker", "hostPath": {"path": str(tmp_path), "type": "Directory"}}])
    spec["spec"]["terminationGracePeriodSeconds"] = 30
    apply(cluster, ns, spec)
    wait_for(lambda: (tmp_path / "started").exists(), timeout=60, interval=0.2, what="the trap installed")

    start = time.monotonic()
    cluster.kubectl("delete", "pod", "trapper", "-n", ns, "--wait=false")
    wait_for(lambda: (tmp_path / "sigterm").exists(), timeout=20, interval=0.2, what="the SIGTERM trap's marker")
    assert (tmp_path / "sigterm").read_text() == "got-sigterm\n"
    wait_for(lambda: gone(cluster, "pod", ns, "trapper"), timeout=30, interval=0.3, what="pod trapper gone")
    # the pod ended as soon as its process exited, not at the end of its 30 s grace period
    assert time.monotonic() - start < 20


def test_a_pod_ignoring_sigterm_is_killed_after_its_grace_period(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, pod("stubborn", container("main", "trap '' TERM; echo ignoring; while true; do sleep 1; done")))
    wait_running(cluster, ns, "stubborn")
    wait_for(lambda: "ignoring" in cluster.kubectl("logs", "stubborn", "-n", ns).stdout,
             timeout=30, interval=0.3, what="the trap installed")

    start = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "-n", ns, "--grace-period=2", "--wait=false")
    wait_for(lambda: gone(cluster, "pod", ns, "stubborn"), timeout=10, interval=0.2, what="pod stubborn gone")
    elapsed = time.monotonic() - start
    assert elapsed >= 1.5, f"gone after {elapsed:.1f} s: the grace period was not waited for"


# -- the real controllers ----------------------------------------------------------------------


def test_job_fails_with_backoff_limit_exceeded_after_two_failed_pods(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, job("doomed", "echo failing; exit 1", backoffLimit=1))

    finished = wait_job_finished(cluster, ns, "doomed", timeout=120)  # the controller backs off 10 s
    assert (finished["condition"]["type"], finished["condition"]["reason"]) == ("Failed", "BackoffLimitExceeded")
    assert finished["job"]["status"].get("failed") == 2
    pods = job_pods(cluster, ns, "doomed")
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Failed"}


def test_job_pod_failure_policy_fails_the_job_on_exit_code_2(cluster, cluster_namespace):
    ns = cluster_namespace
    policy = {"rules": [{"action": "FailJob",
                         "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]}}]}
    apply(cluster, ns, job("fatal", "exit 2", backoffLimit=6, podFailurePolicy=policy))

    finished = wait_job_finished(cluster, ns, "fatal")
    assert (finished["condition"]["type"], finished["condition"]["reason"]) == ("Failed", "PodFailurePolicy")
    assert finished["job"]["status"].get("failed") == 1
    pods = job_pods(cluster, ns, "fatal")
    assert len(pods) == 1, "the policy must stop retries despite backoffLimit 6"
    assert terminated(pods[0])["exitCode"] == 2


def test_job_active_deadline_fails_a_job_still_running(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, job("slow", "sleep 60", activeDeadlineSeconds=3))

    start = time.monotonic()
    finished = wait_job_finished(cluster, ns, "slow", timeout=60)
    assert (finished["condition"]["type"], finished["condition"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert time.monotonic() - start < 50, "the pod's `sleep 60` ran out instead of being stopped"
    wait_for(lambda: not [p for p in job_pods(cluster, ns, "slow") if p["status"].get("phase") == "Running"],
             timeout=30, interval=0.5, what="the job's pods stopped")


def test_ttl_after_finished_zero_deletes_the_job_once_it_succeeds(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, job("ephemeral", "echo done", ttlSecondsAfterFinished=0), job("kept", "echo done"))

    wait_for(lambda: gone(cluster, "job", ns, "ephemeral"), timeout=60, interval=0.5,
             what="the ttl-after-finished controller deleting job ephemeral")
    # the same Job without a TTL stays: the deletion was the TTL's, not something else's
    finished = wait_job_finished(cluster, ns, "kept")
    assert finished["condition"]["type"] == "Complete"
    assert not gone(cluster, "job", ns, "kept")


def test_deleting_a_job_in_background_garbage_collects_its_pods(cluster, cluster_namespace):
    ns = cluster_namespace
    apply(cluster, ns, job("owner", "sleep 60"))
    pods = wait_for(lambda: job_pods(cluster, ns, "owner"), timeout=60, interval=0.3, what="the job's pod")
    owner = cluster.kubectl_json("get", "job", "owner", "-n", ns)
    refs = pods[0]["metadata"]["ownerReferences"]
    assert [(r["kind"], r["uid"]) for r in refs] == [("Job", owner["metadata"]["uid"])]

    cluster.kubectl("delete", "job", "owner", "-n", ns, "--cascade=background", "--wait=false")
    wait_for(lambda: gone(cluster, "job", ns, "owner"), timeout=30, interval=0.3, what="job owner gone")
    wait_for(lambda: not job_pods(cluster, ns, "owner"), timeout=60, interval=0.5,
             what="the garbage collector deleting the job's pods")


# -- Service names -----------------------------------------------------------------------------


def test_service_name_resolves_to_the_selected_pod_ip(cluster, cluster_namespace):
    sandbox = cluster.require_sandbox("Service names resolve to a pod IP, not a ClusterIP, only here")
    if not sandbox.network.isolated:
        pytest.skip("the sandbox runs without network isolation (not root): pods share the host network "
                    "and Service names do not resolve")
    ns = cluster_namespace
    app = unique("backend")
    backend = pod("backend", container("main", "sleep 120"))
    backend["metadata"]["labels"] = {"app": app}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
               "spec": {"selector": {"app": app}, "ports": [{"port": 8080, "targetPort": 8080}]}}
    apply(cluster, ns, service, backend)
    backend_ip = wait_running(cluster, ns, "backend")["status"]["podIP"]

    script = f"""
import socket, sys, time
names = ['api.{ns}.svc', 'api']
deadline = time.monotonic() + 30
while True:
    try:
        found = [socket.gethostbyname(name) for name in names]
        break
    except OSError as error:
        if time.monotonic() > deadline:
            open('/dev/termination-log', 'w').write('unresolved: ' + str(error))
            sys.exit(1)
        time.sleep(0.3)
open('/dev/termination-log', 'w').write(' '.join(found))
"""
    apply(cluster, ns, pod("client", container("main", script, program="python3")))

    done = wait_pod_done(cluster, ns, "client")
    message = terminated(done).get("message", "")
    assert done["status"]["phase"] == "Succeeded", message
    assert message.split() == [backend_ip, backend_ip]
    assert backend_ip not in (done["status"]["podIP"], sandbox.node_ip)
