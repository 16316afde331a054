"""The object store with the API server's semantics; runs on one event loop, no locks needed.

Stored objects are never mutated in place: every change stores a new dict, so watch history
and subscribers may keep references. Callers must not mutate what they get back either.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors, schemas
from .kinds import Kind
from .selectors import Matcher

Obj = dict[str, Any]
Event = tuple[int, tuple[str, str], str, Obj, Obj | None]  # rv, kind key, type, object, previous
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_IMMUTABLE_META = ("uid", "creationTimestamp", "name", "namespace", "generation", "resourceVersion",
                   "deletionTimestamp", "deletionGracePeriodSeconds")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class Watch:
    """A subscriber to one kind's events (optionally one namespace, filtered by selectors)."""

    key: tuple[str, str]
    namespace: str | None
    match: Matcher
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(default_factory=asyncio.Queue)

    def offer(self, kind_key: tuple[str, str], etype: str, obj: Obj, old: Obj | None) -> None:
        """Queue the event as this watcher sees it (ADDED/DELETED when entering/leaving the selector)."""
        if kind_key != self.key or (self.namespace and obj["metadata"].get("namespace") != self.namespace):
            return
        now_in = self.match(obj)
        was_in = old is not None and self.match(old)
        if etype == "MODIFIED" and now_in != was_in:
            etype = "ADDED" if now_in else "DELETED"
        elif not now_in:
            return
        self.queue.put_nowait((etype, obj))


class Store:
    """Objects by kind, a global resourceVersion counter, watch history, garbage collection."""

    def __init__(self, history: int = 50_000) -> None:
        self.kinds: dict[tuple[str, str], Kind] = {}
        self.objects: dict[tuple[str, str], dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self.by_uid: dict[str, tuple[tuple[str, str], str, str]] = {}
        self.rv = 1
        self.history: collections.deque[Event] = collections.deque(maxlen=history)
        self.watches: set[Watch] = set()
        self.subscribers: list[Callable[[str, Kind, Obj, Obj | None], None]] = []
        self.violations: list[dict[str, Any]] = []
        self.on_crd: Callable[[Obj, bool], None] | None = None  # a CRD was stored (True) or removed

    # -- kinds -------------------------------------------------------------------------------------

    def add_kind(self, kind: Kind) -> None:
        self.kinds[kind.key] = kind

    def kind(self, group: str, plural: str) -> Kind | None:
        return self.kinds.get((group, plural))

    # -- reads -------------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        obj = self.objects[kind.key].get((namespace or "" if kind.namespaced else "", name))
        if obj is None:
            raise errors.not_found(kind, name)
        return obj

    def find(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        return self.objects[kind.key].get((namespace or "" if kind.namespaced else "", name))

    def list(self, kind: Kind, namespace: str | None, match: Matcher) -> list[Obj]:
        items = [obj for (ns, _), obj in self.objects[kind.key].items()
                 if (not namespace or ns == namespace) and match(obj)]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def events_since(self, rv: int, key: tuple[str, str]) -> list[Event]:
        """History after `rv` for one kind; 410 Gone when it is older than the kept history."""
        if self.history and rv < self.history[0][0] - 1:
            raise errors.gone(f"too old resource version: {rv} ({self.history[0][0] - 1})")
        return [event for event in self.history if event[0] > rv and event[1] == key]

    # -- writes ------------------------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str | None, body: Obj, *, strict: bool = False,
               dry_run: bool = False, internal: bool = False) -> Obj:
        """POST: name or generateName, 409 on an existing name, schema checks, server-set metadata."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            meta["namespace"] = namespace
            if self.find(self.kinds["", "namespaces"], None, namespace) is None:
                raise errors.not_found(self.kinds["", "namespaces"], namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        name = meta.get("name") or ""
        if not name:
            raise errors.invalid(kind, "", [("metadata.name", "Required value: name or generateName is required")])
        if not _NAME_RE.match(name) or len(name) > 253:
            raise errors.invalid(kind, name, [("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                                               "subdomain must consist of lower case alphanumeric characters, "
                                               "'-' or '.'")])
        if self.find(kind, namespace, name) is not None:
            raise errors.already_exists(kind, name)
        if kind.status and not internal:
            obj.pop("status", None)
        self._check(kind, obj, strict=strict, internal=internal)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        _defaults(kind, obj)
        meta.pop("deletionTimestamp", None)
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        return self._commit("ADDED", kind, obj, None)

    def update(self, kind: Kind, namespace: str | None, name: str, new: Obj, *,
               subresource: str | None = None, strict: bool = False, internal: bool = False) -> Obj:
        """PUT or the result of a PATCH: stale resourceVersion is 409, status isolated, generation."""
        old = self.get(kind, namespace, name)
        new = copy.deepcopy(new)
        if not isinstance(new, dict):
            raise errors.bad_request("the body of an update must be an object")
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        meta = new["metadata"]
        given_rv = meta.get("resourceVersion")
        if given_rv not in (None, "") and str(given_rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(kind, name)
        if meta.get("name") not in (None, name):
            raise errors.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on '
                                     f"the URL ({name})")
        if subresource == "status":
            result = copy.deepcopy({k: v for k, v in old.items() if k != "status"})
            if new.get("status") is not None:
                result["status"] = new["status"]
        elif subresource:
            raise errors.bad_request(f"subresource {subresource!r} cannot be updated in the sandbox")
        else:
            result = new
            result["metadata"] = {**new["metadata"], **{k: old["metadata"][k] for k in _IMMUTABLE_META
                                                         if k in old["metadata"]}}
            for k in _IMMUTABLE_META:
                if k not in old["metadata"]:
                    result["metadata"].pop(k, None)
            if kind.status:
                result.pop("status", None)
                if "status" in old:
                    result["status"] = old["status"]
        result["apiVersion"], result["kind"] = kind.api_version, kind.kind
        if old["metadata"].get("deletionTimestamp"):
            added = set(result["metadata"].get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise errors.invalid(kind, name, [("metadata.finalizers", "Forbidden: no new finalizers can be "
                                                   "added if the object is being deleted")])
        self._check(kind, result, strict=strict, internal=internal or subresource == "status")
        if _same(old, result):
            return old
        if _spec_of(old, kind) != _spec_of(result, kind):
            result["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            self._commit("MODIFIED", kind, result, old)
            return self._remove(kind, result)
        return self._commit("MODIFIED", kind, result, old)

    def delete(self, kind: Kind, namespace: str | None, name: str, *, propagation: str = "Background",
               preconditions: dict[str, Any] | None = None) -> Obj:
        """DELETE: finalizers postpone (deletionTimestamp), otherwise gone; dependents collected."""
        obj = self.get(kind, namespace, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise errors.conflict(kind, name, "Precondition failed: UID in precondition does not match")
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(kind, name, "Precondition failed: ResourceVersion does not match")
        uid = obj["metadata"]["uid"]
        if propagation == "Orphan":
            self._orphan(uid)
        elif propagation == "Foreground":
            self._collect(uid, force=True)
        if kind.key == ("", "namespaces"):
            self._empty_namespace(name)
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            marked = {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": now(),
                                          "deletionGracePeriodSeconds": 0}}
            return self._commit("MODIFIED", kind, marked, obj)
        return self._remove(kind, obj)

    # -- internals ---------------------------------------------------------------------------------

    def _check(self, kind: Kind, obj: Obj, *, strict: bool, internal: bool) -> None:
        name = obj["metadata"].get("name", "")
        if kind.custom and kind.schema is not None:
            kept = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
            pruned = schemas.prune_and_default(obj, kind.schema)
            obj.update(kept)
            if strict and pruned:
                raise errors.invalid(kind, name, [(p, "unknown field") for p in pruned])
            causes = [(f, m) for f, m in schemas.schema_errors(obj, kind.schema)
                      if not f.startswith(("metadata", "apiVersion", "kind"))]
            if causes:
                raise errors.invalid(kind, name, causes)
        elif not internal:
            problems = schemas.builtin_violations(obj)
            if problems:
                self.violations.append({"kind": kind.kind, "namespace": obj["metadata"].get("namespace"),
                                        "name": name, "errors": problems})

    def _commit(self, etype: str, kind: Kind, obj: Obj, old: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[kind.key][(meta.get("namespace", ""), meta["name"])] = obj
        self.by_uid[meta["uid"]] = (kind.key, meta.get("namespace", ""), meta["name"])
        self._emit(etype, kind, obj, old)
        if kind.key == ("apiextensions.k8s.io", "customresourcedefinitions") and self.on_crd:
            self.on_crd(obj, True)
        return obj

    def _remove(self, kind: Kind, obj: Obj) -> Obj:
        self.rv += 1
        meta = obj["metadata"]
        gone = {**obj, "metadata": {**meta, "resourceVersion": str(self.rv)}}
        self.objects[kind.key].pop((meta.get("namespace", ""), meta["name"]), None)
        self.by_uid.pop(meta["uid"], None)
        self._emit("DELETED", kind, gone, obj)
        if kind.key == ("apiextensions.k8s.io", "customresourcedefinitions") and self.on_crd:
            self.on_crd(obj, False)
        self._collect(meta["uid"])
        return gone

    def _emit(self, etype: str, kind: Kind, obj: Obj, old: Obj | None) -> None:
        self.history.append((self.rv, kind.key, etype, obj, old))
        for watch in list(self.watches):
            watch.offer(kind.key, etype, obj, old)
        for subscriber in list(self.subscribers):
            subscriber(etype, kind, obj, old)

    def dependents(self, uid: str) -> list[tuple[Kind, Obj]]:
        found = []
        for key, objs in self.objects.items():
            for obj in list(objs.values()):
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append((self.kinds[key], obj))
        return found

    def _collect(self, uid: str, force: bool = False) -> None:
        """Garbage collection: delete dependents whose owners are all gone (recursively)."""
        for kind, obj in self.dependents(uid):
            owners = [ref["uid"] for ref in obj["metadata"]["ownerReferences"] if ref.get("uid") != uid]
            if force or not any(owner in self.by_uid for owner in owners):
                meta = obj["metadata"]
                if self.find(kind, meta.get("namespace"), meta["name"]) is not None:
                    self.delete(kind, meta.get("namespace"), meta["name"])

    def _orphan(self, uid: str) -> None:
        for kind, obj in self.dependents(uid):
            refs = [ref for ref in obj["metadata"]["ownerReferences"] if ref.get("uid") != uid]
            self._commit("MODIFIED", kind, {**obj, "metadata": {**obj["metadata"], "ownerReferences": refs}}, obj)

    def _empty_namespace(self, namespace: str) -> None:
        for key, objs in list(self.objects.items()):
            kind = self.kinds[key]
            if kind.namespaced:
                for (ns, name) in [k for k in objs if k[0] == namespace]:
                    if self.find(kind, ns, name) is not None:
                        self.delete(kind, ns, name)


def _spec_of(obj: Obj, kind: Kind) -> Obj:
    """What bumps `generation`: everything but metadata (and status, with the status subresource)."""
    skip = {"metadata", "status"} if kind.status or not kind.custom else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def _same(old: Obj, new: Obj) -> bool:
    strip = {"resourceVersion", "generation"}
    return ({**old, "metadata": {k: v for k, v in old["metadata"].items() if k not in strip}}
            == {**new, "metadata": {k: v for k, v in new["metadata"].items() if k not in strip}})


def _defaults(kind: Kind, obj: Obj) -> None:
    """A few server-side defaults that controllers and clients rely on."""
    if kind.key == ("", "namespaces"):
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind.key == ("batch", "jobs"):
        spec = obj.setdefault("spec", {})
        for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1), ("suspend", False),
                           ("completionMode", "NonIndexed")):
            spec.setdefault(key, value)
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name, "controller-uid": uid,
                       "batch.kubernetes.io/controller-uid": uid})
        spec["template"].setdefault("spec", {}).setdefault("restartPolicy", "Never")
    elif kind.key == ("", "pods"):
        obj.setdefault("status", {"phase": "Pending"})
    elif kind.key == ("", "persistentvolumeclaims"):
        obj.setdefault("status", {"phase": "Bound"})
