"""The HTTP API: kmock's KubernetesEmulator with the store's semantics, served from its own thread."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import yaml
from kmock import KubernetesEmulator, KubernetesError
from kmock._internal import enums, parsing, references, rendering

from . import errors, patches, tables
from .kinds import Kind
from .selectors import SelectorError, field_matcher, label_matcher
from .store import Store

T = TypeVar("T")
log = logging.getLogger("pitwall.sandbox")
_NAMESPACES_RE = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")
_PATCHERS = {
    "application/merge-patch+json": patches.merge_patch,
    "application/strategic-merge-patch+json": patches.strategic_merge_patch,
    "application/apply-patch+yaml": patches.merge_patch,  # server-side apply, approximated as a merge
    "application/json-patch+json": patches.json_patch,
}


@attrs.define(kw_only=True)
class SandboxAPI(KubernetesEmulator):
    """kmock's emulator with our store behind its fallback reactions.

    Tests may still add kmock reactions in front (e.g. `api['patch', kmock.resource(...)] << 500`
    to inject faults); everything else falls through to the store.
    """

    store: Store = attrs.field(factory=Store)
    pod_log: Callable[[str, str], Path | None] = attrs.field(default=lambda ns, name: None)

    _own_reactions: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[kmock.method.PUT] << self._serve_replace
        self.fallback[kmock.method.DELETE] << self._serve_delete_collection
        self._own_reactions = len(self._payloads)

    # -- plumbing ----------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if len(self._requests) > 2000:  # kmock keeps every request; keep memory flat for long runs
            del self._requests[:1000]
        if raw_request.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            return await self._render_error(KubernetesError(  # client-go then falls back to JSON
                415, "UnsupportedMediaType", "the sandbox speaks JSON only (for kubectl create GENERATOR, pipe `--dry-run=client -o yaml` into `kubectl apply -f -`)", {}))
        match = _NAMESPACES_RE.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        try:  # kmock's path parser cannot parse /api/v1/namespaces[/name]; serve them directly
            return await self._dispatch(await _namespace_request(raw_request, match[1], match[2]))
        except KubernetesError as error:
            return await self._render_error(error)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip the stock emulator's in-memory bookkeeping: the store is the only state. Without
        # user-added reactions, go straight to the store (kmock's matching costs ~3 ms a request).
        if request.resource is not None and request.resource.plural and len(self._payloads) == self._own_reactions:
            return await self._dispatch(request)
        return await super(KubernetesEmulator, self)._handle(request)

    async def _dispatch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Serve a resource request from the store by its verb."""
        if request.method == kmock.method.PUT:
            serve = self._serve_replace
        elif request.method == kmock.method.DELETE and request.name is None:
            serve = self._serve_delete_collection
        else:
            serve = {enums.action.LIST: self._serve_list, enums.action.WATCH: self._serve_watch,
                     enums.action.FETCH: self._serve_fetch, enums.action.CREATE: self._serve_create,
                     enums.action.UPDATE: self._serve_update, enums.action.DELETE: self._serve_delete}.get(
                request.action, self._not_allowed)
        response = await serve(request)
        return await response(request)

    async def _not_allowed(self, request: rendering.Request) -> rendering.Response:
        raise KubernetesError(405, "MethodNotAllowed", "the server does not allow this method on the "
                              "requested resource", {})

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if not isinstance(exc, KubernetesError):
            log.error("sandbox API error", exc_info=exc)
        error = exc if isinstance(exc, KubernetesError) else KubernetesError(500, "InternalError", repr(exc), {})
        return aiohttp.web.json_response(errors.status_body(error), status=error.status)

    def _get_resources(self) -> list[references.resource]:
        return [references.resource(k.group, k.version, k.plural) for k in self.store.kinds.values()]

    async def _serve_server_version(self, request: rendering.Request) -> dict[str, Any]:
        """/version: the Kubernetes version built-in objects are validated against."""
        from .schemas import PINNED_K8S_VERSION

        major, minor = PINNED_K8S_VERSION.split(".")
        return {"major": major, "minor": minor, "gitVersion": f"v{PINNED_K8S_VERSION}.0-pitwall-sandbox",
                "platform": "linux/amd64", "compiler": "gc", "goVersion": "go1.23", "gitTreeState": "clean"}

    async def _serve_version(self, request: rendering.Request) -> dict[str, Any]:
        """APIResourceList of one group/version (subresources without short names, as real)."""
        res = request.resource
        kinds = [k for k in self.store.kinds.values() if (k.group, k.version) == (res.group, res.version)]
        if not kinds and res.group != "":
            raise KubernetesError(404, "NotFound", "the server could not find the requested resource", {})
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        resources = []
        for k in sorted(kinds, key=lambda k: k.plural):
            resources.append({"name": k.plural, "singularName": k.singular or k.kind.lower(), "kind": k.kind,
                              "namespaced": k.namespaced, "verbs": verbs, "shortNames": list(k.short_names),
                              "categories": list(k.categories)})
            if k.status:
                resources.append({"name": f"{k.plural}/status", "singularName": "", "kind": k.kind,
                                  "namespaced": k.namespaced, "verbs": ["get", "patch", "update"]})
            if k.key == ("", "pods"):
                resources.append({"name": "pods/log", "singularName": "", "kind": "Pod",
                                  "namespaced": True, "verbs": ["get"]})
        return {"apiVersion": "v1", "kind": "APIResourceList", "groupVersion": f"{res.group}/{res.version}".lstrip("/"),
                "resources": resources}

    def register(self, kind: Kind) -> None:
        """Serve a kind: in the store and in discovery."""
        self.store.add_kind(kind)
        verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
        self.resources[f"{kind.group}/{kind.version}/{kind.plural}"] = kmock.ResourceInfo(
            namespaced=kind.namespaced, kind=kind.kind, singular=kind.singular or kind.kind.lower(), verbs=verbs,
            shortnames=set(kind.short_names), categories=set(kind.categories),
            subresources={"status"} if kind.status else set())

    def _kind(self, request: rendering.Request) -> Kind:
        res = request.resource
        kind = self.store.kind(res.group, res.plural) if res is not None else None
        if kind is None or kind.version != res.version:
            raise KubernetesError(404, "NotFound", "the server could not find the requested resource", {
                "group": getattr(res, "group", ""), "kind": getattr(res, "plural", "")})
        return kind

    # -- verbs -------------------------------------------------------------------------------------

    async def _serve_list(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        match = _matcher(request.params, request.name)
        items = self.store.list(kind, request.namespace, match)
        if kind.custom and tables.wants_table(request.headers.get("Accept", "")):
            return _ok(tables.table(kind, items, str(self.store.rv), request.params.get("includeObject", "")))
        return _ok({"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                    "metadata": {"resourceVersion": str(self.store.rv)}, "items": items})

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        obj = self.store.get(kind, request.namespace, request.name or "")
        if request.subresource == "log" and kind.key == ("", "pods"):
            path = self.pod_log(request.namespace or "", request.name or "")
            text = path.read_bytes() if path is not None and path.exists() else b""
            return rendering.Response(status=200, headers={"Content-Type": "text/plain"}, payload=text)
        if kind.custom and tables.wants_table(request.headers.get("Accept", "")):
            return _ok(tables.table(kind, [obj], obj["metadata"]["resourceVersion"],
                                    request.params.get("includeObject", "")))
        return _ok(obj)

    async def _serve_create(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        body = _body(request)
        obj = self.store.create(kind, request.namespace, body, strict=_strict(request),
                                dry_run=request.params.get("dryRun") == "All")
        return _ok(obj, 201)

    async def _serve_replace(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        if request.name is None:
            raise KubernetesError(405, "MethodNotAllowed", "the server does not allow this method", {})
        obj = self.store.update(kind, request.namespace, request.name, _body(request),
                                subresource=request.subresource, strict=_strict(request))
        return _ok(obj)

    async def _serve_update(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        patcher = _PATCHERS.get(ctype)
        if patcher is None:
            raise KubernetesError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                                  f"format - accepted media types include: {', '.join(_PATCHERS)}", {})
        body = yaml.safe_load(request.text) if ctype.endswith("yaml") else _body(request)
        current = self.store.find(kind, request.namespace, request.name or "")
        if current is None and ctype == "application/apply-patch+yaml":
            return _ok(self.store.create(kind, request.namespace, body, strict=_strict(request)), 201)
        if current is None:
            raise errors.not_found(kind, request.name or "")
        try:
            patched = patcher(current, body)
        except patches.PatchError as error:
            raise errors.unprocessable(str(error)) from None
        obj = self.store.update(kind, request.namespace, request.name or "", patched,
                                subresource=request.subresource, strict=_strict(request))
        return _ok(obj)

    async def _serve_delete(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        options = request.data if isinstance(request.data, dict) else {}
        policy = request.params.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        obj = self.store.delete(kind, request.namespace, request.name or "", propagation=policy,
                                preconditions=options.get("preconditions"))
        return _ok(obj)

    async def _serve_delete_collection(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        items = self.store.list(kind, request.namespace, _matcher(request.params, None))
        for obj in items:
            meta = obj["metadata"]
            if self.store.find(kind, meta.get("namespace"), meta["name"]) is not None:
                self.store.delete(kind, meta.get("namespace"), meta["name"])
        return _ok({"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                    "metadata": {"resourceVersion": str(self.store.rv)}, "items": items})

    async def _serve_watch(self, request: rendering.Request) -> rendering.Response:
        kind = self._kind(request)
        match = _matcher(request.params, request.name)
        timeout = float(request.params.get("timeoutSeconds") or 1800)
        since = request.params.get("resourceVersion") or "0"
        as_table = kind.custom and tables.wants_table(request.headers.get("Accept", ""))
        include = request.params.get("includeObject", "")
        return rendering.Response(status=200, headers={"Content-Type": "application/json"},
                                  payload=self._stream(kind, request.namespace, match, since, timeout,
                                                       as_table, include))

    async def _stream(self, kind: Kind, namespace: str | None, match: Any, since: str,
                      timeout: float, as_table: bool = False, include: str = "") -> AsyncIterator[Any]:
        """ADDED for the current state (or the history after `since`), then live events until timeout."""
        from .store import Watch

        watch = Watch(kind.key, namespace, match)
        try:
            if since in ("", "0"):
                for obj in self.store.list(kind, namespace, match):
                    watch.queue.put_nowait(("ADDED", obj))
            else:
                for _, key, etype, obj, old in self.store.events_since(int(since), kind.key):
                    watch.offer(key, etype, obj, old)
        except KubernetesError as error:
            yield b""
            yield {"type": "ERROR", "object": errors.status_body(error)}
            return
        self.store.watches.add(watch)
        deadline = time.monotonic() + timeout
        try:
            yield b""  # send the headers now, even if nothing happens
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = await asyncio.wait_for(watch.queue.get(), timeout=left)
                except TimeoutError:
                    break
                if event is None:
                    break
                obj = tables.table(kind, [event[1]], event[1]["metadata"]["resourceVersion"], include) \
                    if as_table else event[1]
                yield {"type": event[0], "object": obj}
        finally:
            self.store.watches.discard(watch)


def _ok(payload: Any, status: int = 200) -> rendering.Response:
    return rendering.Response(status=status, headers={"Content-Type": "application/json"}, payload=payload)


def _body(request: rendering.Request) -> dict[str, Any]:
    if not isinstance(request.data, dict | list):
        raise errors.bad_request(f"the request body must be a JSON object, got "
                                 f"{request.headers.get('Content-Type')!r}: {request.body[:60]!r}")
    return request.data


def _strict(request: rendering.Request) -> bool:
    return request.params.get("fieldValidation") == "Strict"


def _matcher(params: dict[str, str], name: str | None) -> Callable[[dict[str, Any]], bool]:
    try:
        labels = label_matcher(params.get("labelSelector"))
        fields = field_matcher(params.get("fieldSelector"))
    except SelectorError as error:
        raise errors.bad_request(str(error)) from None
    return lambda obj: (name is None or obj["metadata"]["name"] == name) and labels(obj) and fields(obj)


async def _namespace_request(raw: aiohttp.web.BaseRequest, name: str | None,
                             subresource: str | None) -> rendering.Request:
    body = await raw.read()
    try:
        data = await raw.json() if body else None
    except ValueError:
        data = None
    k8s = parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name, subresource=subresource)
    method = enums.method(raw.method)
    return rendering.Request(raw_request=raw, url=raw.url, method=raw.method, params=dict(raw.query),
                             headers=dict(raw.headers), data=data, body=body, text=body.decode(errors="replace"),
                             action=parsing.guess_k8s(k8s, method, dict(raw.query)),
                             resource=references.resource(group="", version="v1", plural="namespaces"),
                             namespace=None, name=name, subresource=subresource)


class ApiServer:
    """Runs a SandboxAPI on 127.0.0.1 (a free port) in its own thread and event loop."""

    def __init__(self, api: SandboxAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api, self.host, self.port = api, host, port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sandbox-api", daemon=True)
        self._runner: aiohttp.web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        await self.api.__aenter__()
        self._runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.api), shutdown_timeout=1.0)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the API loop from any other thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a function on the API loop (the store is not thread-safe) and return its result."""

        async def wrapper() -> T:
            return fn(*args, **kwargs)

        return self.run(wrapper())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _stop(self) -> None:
        for watch in list(self.api.store.watches):
            watch.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.api.__aexit__(None, None, None)
