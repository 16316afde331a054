"""Every API call of the plugin: the user's kubeconfig (like kubectl), lists as plain dicts, watches,
pods and logs. Failures become `PluginError` with a message for the user, never a traceback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from pitwall_api import GROUP, VERSION

TRAININGRUNS, RETRAINPOLICIES = "trainingruns", "retrainpolicies"
REQUEST_TIMEOUT = 15  # seconds per list/get: an unreachable cluster is reported, not waited on forever
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class PluginError(Exception):
    """A failure to report in one line and exit 1."""


@dataclass
class Kube:
    api: client.ApiClient
    namespace: str  # the -n value, or the context's namespace, or "default"
    all_namespaces: bool
    context: str | None
    host: str

    @property
    def scope(self) -> str | None:
        """The namespace to list in, None for all namespaces."""
        return None if self.all_namespaces else self.namespace

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    # --- list functions (the same function lists and, with watch=True, watches) ----------------

    def lister(self, what: str) -> Callable[..., Any]:
        """The list call for trainingruns, retrainpolicies or events (about TrainingRuns) in scope."""
        if what == "events":
            selector = "involvedObject.kind=TrainingRun"
            if self.scope is None:
                return partial(self.core.list_event_for_all_namespaces, field_selector=selector)
            return partial(self.core.list_namespaced_event, self.scope, field_selector=selector)
        if self.scope is None:
            return partial(self.custom.list_cluster_custom_object, GROUP, VERSION, what)
        return partial(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.scope, what)

    def list_raw(self, what: str) -> tuple[list[dict[str, Any]], str | None]:
        """(items as the API returns them, the list's resourceVersion) for a watch to start from."""
        body = self.call(lambda: self.lister(what)(_preload_content=False, _request_timeout=REQUEST_TIMEOUT),
                         what=what)
        data = json.loads(body.data)
        return data.get("items") or [], (data.get("metadata") or {}).get("resourceVersion")

    def watch(self, what: str, resource_version: str | None, timeout_seconds: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, raw object) from a watch; ends after timeout_seconds; raises ApiException on 410 Gone."""
        w = watch.Watch()
        try:
            for event in w.stream(self.lister(what), resource_version=resource_version,
                                  timeout_seconds=timeout_seconds, allow_watch_bookmarks=True):
                yield event["type"], event["raw_object"]
        finally:
            w.stop()

    # --- single objects ------------------------------------------------------------------------

    def get_run(self, name: str) -> dict[str, Any]:
        try:
            return self.call(lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, TRAININGRUNS, name, _request_timeout=REQUEST_TIMEOUT), what="trainingruns")
        except ApiException as exc:
            if exc.status == 404:
                raise PluginError(f"TrainingRun {name} not found in namespace {self.namespace}") from None
            raise

    def run_events(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        name = run["metadata"]["name"]
        selector = f"involvedObject.kind=TrainingRun,involvedObject.name={name}"
        body = self.call(lambda: self.core.list_namespaced_event(
            self.namespace, field_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT),
            what="events")
        return json.loads(body.data).get("items") or []

    def pods(self, selector: str) -> list[dict[str, Any]]:
        body = self.call(lambda: self.core.list_namespaced_pod(
            self.namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT),
            what="pods")
        return json.loads(body.data).get("items") or []

    def call(self, fn: Callable[[], Any], what: str = "") -> Any:
        """Run one API call; turn an unreachable cluster, a refusal or a missing CRD into PluginError."""
        try:
            return fn()
        except ApiException as exc:
            if exc.status == 404 and what in (TRAININGRUNS, RETRAINPOLICIES) and _is_missing_resource(exc):
                raise PluginError(f"the cluster has no {what}.{GROUP} resource: is PitWall installed "
                                  f"(its CRDs) on {self.host}?") from None
            if exc.status in (401, 403):
                raise PluginError(f"the API server at {self.host} refused to list/get {what or 'objects'}: "
                                  f"{_api_message(exc)}") from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise PluginError(f"cannot reach the cluster at {self.host}"
                              f"{f' (context {self.context})' if self.context else ''}: {_reason(exc)}") from None


def _api_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _is_missing_resource(exc: ApiException) -> bool:
    """A 404 for the resource type itself (CRD absent), not for one object."""
    try:
        details = json.loads(exc.body).get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return True
    return not details.get("name")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) not in (None, reason):
        reason = reason.reason  # urllib3 wraps: MaxRetryError(reason=NewConnectionError(...))
    text = str(reason or exc)
    return text.split(": ", 1)[-1] if "Failed to establish a new connection" in text else text


def connect(kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None,
            all_namespaces: bool = False) -> Kube:
    """A client for the user's cluster, defaulting like kubectl: --kubeconfig, else $KUBECONFIG,
    else ~/.kube/config (else in-cluster); --context, else the current context; -n, else the
    context's namespace, else `default`."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    context_name: str | None = context
    context_namespace: str | None = None
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                persist_config=False)
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else current
        if chosen:
            context_name = chosen["name"]
            context_namespace = (chosen.get("context") or {}).get("namespace")
    except (ConfigException, OSError) as exc:
        if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PluginError(f"cannot load the kubeconfig {path}: {exc}") from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as inner:
            raise PluginError(f"no kubeconfig ({path}) and not in a cluster: {inner}") from None
        if IN_CLUSTER_NAMESPACE.is_file():
            context_namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
    configuration.retries = 1  # an unreachable server fails in seconds, not after urllib3's default retries
    return Kube(api=client.ApiClient(configuration), namespace=namespace or context_namespace or "default",
                all_namespaces=all_namespaces, context=context_name, host=configuration.host)
