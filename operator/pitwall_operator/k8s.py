"""Every Kubernetes API call the operator makes, in one place (RBAC: permissions.OPERATOR_RULES).

Plain dicts in and out over the kubernetes client's REST layer: no model classes, so what the
builders return is exactly what is sent. Synchronous on purpose: kopf runs sync handlers in
worker threads, and the client's connection pool is thread-safe.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config

from pitwall_operator.config import GROUP, PLURAL, VERSION

_lock = threading.Lock()
_api: client.ApiClient | None = None
TIMEOUT = (5, 30)  # connect, read (seconds)
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer: `status` 404, 409, 422, 5xx... and the server's message."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"{status}: {message}")

    @property
    def retryable(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def api_client() -> client.ApiClient:
    """One shared client: in-cluster config in a pod, else $KUBECONFIG / ~/.kube/config."""
    global _api
    with _lock:
        if _api is None:
            cfg = client.Configuration()
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                config.load_incluster_config(client_configuration=cfg)
            else:
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
            cfg.connection_pool_maxsize = 32  # kopf's worker threads share it
            _api = client.ApiClient(cfg)
        return _api


def configure(api: client.ApiClient | None) -> None:
    """Use this client (tests, or re-login); None drops it so the next call reloads the config."""
    global _api
    with _lock:
        _api = api


def request(
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One HTTP call; returns the decoded JSON, raises ApiError on anything but 2xx."""
    api = api_client()
    url_path = path + ("?" + urlencode(query) if query else "")
    headers = {"Accept": "application/json", "Content-Type": content_type}
    _, url, headers, body, _ = api.param_serialize(
        method, url_path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    try:
        response = api.call_api(method, url, header_params=headers, body=body, _request_timeout=TIMEOUT)
        data = response.read()
    except client.ApiException as exc:  # connection errors surface as status 0
        raise ApiError(exc.status or 0, str(exc.reason)) from None
    except OSError as exc:
        raise ApiError(0, str(exc)) from None
    if not 200 <= response.status < 300:
        message = data.decode(errors="replace") if data else response.reason
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(message).get("message", message)
        raise ApiError(response.status, str(message))
    return json.loads(data) if data else {}


# --- paths -----------------------------------------------------------------------------------

_CORE = {"ConfigMap": "configmaps", "Event": "events", "Pod": "pods", "Secret": "secrets",
         "ServiceAccount": "serviceaccounts"}
_GROUPED = {("batch/v1", "Job"): "jobs", ("ray.io/v1", "RayCluster"): "rayclusters",
            (f"{GROUP}/{VERSION}", "TrainingRun"): PLURAL,
            ("rbac.authorization.k8s.io/v1", "Role"): "roles", ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
            ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
            ("coordination.k8s.io/v1", "Lease"): "leases"}


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """The collection in a namespace, or in every namespace when `namespace` is None."""
    scope = f"/namespaces/{quote(namespace)}" if namespace is not None else ""
    if api_version == "v1":
        return f"/api/v1{scope}/{_CORE[kind]}"
    return f"/apis/{api_version}{scope}/{_GROUPED[(api_version, kind)]}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(api_version, kind, namespace)}/{quote(name)}"


# --- verbs -----------------------------------------------------------------------------------


class StaleChild(ApiError):
    """A 409 for an object that is not ours: a predecessor's child (same name, other or no owner
    uid) that garbage collection has not removed yet, or one somebody else made. Never ours."""

    def __init__(self, existing: dict[str, Any]):
        self.existing = existing
        meta = existing.get("metadata") or {}
        owners = ", ".join(owner_uids(existing)) or "no owner"
        super().__init__(409, f"{existing.get('kind', 'object')} {meta.get('name')} exists and is not this run's ({owners})")


def owner_uids(obj: dict[str, Any] | None) -> list[str]:
    return [ref.get("uid", "") for ref in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []]


def owned_by(obj: dict[str, Any] | None, uid: str) -> bool:
    """Whether `obj` names `uid` among its owners (a name alone proves nothing: names are reused)."""
    return bool(uid) and uid in owner_uids(obj)


def create(obj: dict[str, Any], *, read_back: bool = True) -> tuple[dict[str, Any], bool]:
    """Create idempotently: (object, True) when created, (existing object, False) on 409.

    An object built with an owner is "already there" only if the existing one carries that
    owner's uid; else StaleChild. `read_back=False` (objects the operator may create but not
    read, e.g. Secrets): a 409 is taken as ours, so give such objects a name unique to the owner.
    """
    meta = obj["metadata"]
    path = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
    try:
        return request("POST", path, obj), True
    except ApiError as exc:
        if exc.status != 409 or not meta.get("name"):
            raise
    if not read_back:
        return obj, False
    existing = get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is None:  # deleted between the 409 and the read: let the caller retry
        raise ApiError(409, f"{obj['kind']} {meta['name']} exists but could not be read")
    wanted = owner_uids(obj)
    if wanted and not owned_by(existing, wanted[0]):
        raise StaleChild({"apiVersion": obj["apiVersion"], "kind": obj["kind"], **existing})
    return existing, False


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist."""
    try:
        return request("GET", object_path(api_version, kind, namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def delete(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Delete with background propagation (pods go with their Job); False when already gone."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    try:
        request("DELETE", object_path(api_version, kind, namespace, name), body)
        return True
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise


def patch_status(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch the TrainingRun's status subresource (never its spec: GitOps owns that)."""
    path = object_path(f"{GROUP}/{VERSION}", "TrainingRun", namespace, name) + "/status"
    return request("PATCH", path, {"status": status}, content_type=MERGE_PATCH)


def annotate_training_run(namespace: str, name: str, annotations: dict[str, str]) -> bool:
    """Merge-patch annotations of a TrainingRun (the operator's wake-up call, see
    handlers/trainingrun.py); False when the run is gone."""
    path = object_path(f"{GROUP}/{VERSION}", "TrainingRun", namespace, name)
    try:
        request("PATCH", path, {"metadata": {"annotations": annotations}}, content_type=MERGE_PATCH)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def get_training_run(namespace: str, name: str) -> dict[str, Any] | None:
    return get(f"{GROUP}/{VERSION}", "TrainingRun", namespace, name)


def list_job_pods(namespace: str, job_name: str) -> list[dict[str, Any]]:
    """Pods of a Job, by the `job-name` label the Job controller sets."""
    path = collection_path("v1", "Pod", namespace)
    return request("GET", path, query={"labelSelector": f"job-name={job_name}"}).get("items") or []


def read_secret_key(namespace: str, name: str, key: str) -> str | None:
    """One decoded key of a Secret; None when the Secret or key is missing."""
    secret = get("v1", "Secret", namespace, name)
    if secret is None:
        return None
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    raw = (secret.get("data") or {}).get(key)
    return base64.b64decode(raw).decode().strip() if raw is not None else None


def post_event(event: dict[str, Any]) -> None:
    """Post a core/v1 Event; best effort (an Event is never worth failing a reconcile)."""
    with contextlib.suppress(ApiError):
        request("POST", collection_path("v1", "Event", event["metadata"]["namespace"]), event)


# --- RetrainPolicy (issue 8): the policy's status, the runs it created, its monitoring Jobs ----------


def patch_policy_status(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch a RetrainPolicy's status subresource (never its spec)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/retrainpolicies/{quote(name)}/status"
    return request("PATCH", path, {"status": status}, content_type=MERGE_PATCH)


def list_objects(api_version: str, kind: str, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
    """Objects of a kind in a namespace (None: all) matching a label selector (TrainingRuns, Jobs, Pods)."""
    path = collection_path(api_version, kind, namespace)
    return request("GET", path, query={"labelSelector": label_selector}).get("items") or []
