"""`kubectl pitwall dashboard`: a shared store fed by watches (one thread per resource), redrawn on
every change and once a second (ages and ETAs move), with rich Live. `--once`: one list, one frame."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from kubernetes.client.rest import ApiException
from rich.console import Console
from rich.live import Live

from pitwall_kubectl import render
from pitwall_kubectl.kube import RETRAINPOLICIES, TRAININGRUNS, Kube, PluginError

KINDS = {"runs": TRAININGRUNS, "policies": RETRAINPOLICIES, "events": "events"}
EVENTS_KEPT = 2000  # the newest events kept in memory (only the last one per run is shown)


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"


class Store:
    """The objects the watches have seen, by kind; `changed` is set on every change."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.errors: dict[str, str] = {}
        self.changed = threading.Event()

    def replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.objects[kind] = {_key(item): item for item in items}
            self.errors.pop(kind, None)
        self.changed.set()

    def apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        with self.lock:
            if event_type == "DELETED":
                self.objects[kind].pop(_key(obj), None)
            elif event_type in ("ADDED", "MODIFIED"):
                self.objects[kind][_key(obj)] = obj
                if kind == "events" and len(self.objects[kind]) > EVENTS_KEPT:
                    oldest = sorted(self.objects[kind].items(), key=lambda kv: str(render.event_time(kv[1])))
                    for key, _ in oldest[: len(oldest) - EVENTS_KEPT]:
                        del self.objects[kind][key]
            else:  # BOOKMARK: nothing changed
                return
        self.changed.set()

    def fail(self, kind: str, message: str) -> None:
        with self.lock:
            self.errors[kind] = message
        self.changed.set()

    def snapshot(self, kube: Kube) -> dict[str, Any]:
        with self.lock:
            state: dict[str, Any] = {kind: list(objs.values()) for kind, objs in self.objects.items()}
            state["errors"] = {KINDS[k]: v for k, v in self.errors.items()}
        state["namespace"] = kube.scope
        state["context"] = kube.context
        return state


def load(kube: Kube, store: Store) -> dict[str, str | None]:
    """List every kind once into the store; the resourceVersions the watches start from.

    TrainingRuns must list (else PluginError: the dashboard has nothing to show); RetrainPolicies
    and Events may fail (e.g. RBAC), which the header then says.
    """
    versions: dict[str, str | None] = {}
    for kind, what in KINDS.items():
        try:
            items, versions[kind] = kube.list_raw(what)
        except (PluginError, ApiException) as exc:
            if kind == "runs":
                raise
            store.fail(kind, str(exc) if isinstance(exc, PluginError) else f"{exc.status} {exc.reason}")
            versions[kind] = None
            continue
        store.replace(kind, items)
    return versions


def _watch_forever(kube: Kube, store: Store, kind: str, resource_version: str | None, stop: threading.Event) -> None:
    """Watch one kind into the store; on expiry (410) or a broken connection, list again and go on."""
    backoff = 1.0
    while not stop.is_set():
        try:
            if resource_version is None:
                items, resource_version = kube.list_raw(KINDS[kind])
                store.replace(kind, items)
            for event_type, obj in kube.watch(KINDS[kind], resource_version):
                if stop.is_set():
                    return
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    resource_version = version
                store.apply(kind, event_type, obj)
                backoff = 1.0
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the version is too old, relist without complaint
                store.fail(kind, f"watch failed: {exc.status} {exc.reason}")
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            resource_version = None
        except Exception as exc:  # a dropped connection, an unreachable server: say so, retry
            store.fail(kind, f"watch interrupted: {type(exc).__name__}: {str(exc)[:200]}")
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
            resource_version = None


def run_once(kube: Kube, console: Console) -> None:
    store = Store()
    load(kube, store)
    console.print(render.dashboard(store.snapshot(kube), datetime.now().astimezone()))


def run_live(kube: Kube, console: Console, refresh_seconds: float = 1.0) -> None:
    store = Store()
    versions = load(kube, store)
    stop = threading.Event()
    for kind in KINDS:
        threading.Thread(target=_watch_forever, args=(kube, store, kind, versions[kind], stop),
                         name=f"watch-{kind}", daemon=True).start()
    try:
        with Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            while True:
                store.changed.clear()
                live.update(render.dashboard(store.snapshot(kube), datetime.now().astimezone()), refresh=True)
                # redraw as soon as a watch reports, else after a second (ages and ETAs move)
                store.changed.wait(refresh_seconds)
                time.sleep(0.05)  # coalesce a burst of watch events into one redraw
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
