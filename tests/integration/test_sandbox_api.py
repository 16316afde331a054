"""The sandbox API behaves like a real API server for kubectl, the kubernetes client and Kopf."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.plugins.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

JSON_PATCH = "application/json-patch+json"
GROUP, VERSION, PLURAL = "sandboxtest.pitwall.io", "v1", "widgets"
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                }},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> client.ApiClient:
    """A client for the cluster with the Widget CRD installed (posted like any CRD)."""
    api_client = cluster.api_client()
    ext = client.ApiextensionsV1Api(api_client)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as error:
        assert error.status == 409
    objs = client.CustomObjectsApi(api_client)
    wait_for(lambda: _served(objs), what="the Widget CRD to be served")
    yield api_client
    ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")


def _served(objs: client.CustomObjectsApi) -> bool:
    try:
        objs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        return True
    except ApiException:
        return False


def widget(name: str, size: int = 1, **meta: object) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name, **meta},
            "spec": {"size": size}}


def test_create_sets_server_metadata_and_defaults(api, cluster_namespace):
    """Kopf's adopt needs uid, its patches need resourceVersion; the client needs 201 + the object."""
    objs = client.CustomObjectsApi(api)
    created = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    assert meta["generation"] == 1
    assert created["spec"] == {"size": 1, "mode": "fast"}  # schema default applied


def test_create_status_code_is_201(api, cluster_namespace):
    """A real server answers 201 Created to a POST (kmock answered 200)."""
    objs = client.CustomObjectsApi(api)
    _, status, _ = objs.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, cluster_namespace, PLURAL, widget("b"))
    assert status == 201


def test_existing_name_is_409_already_exists(api, cluster_namespace):
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("dup"))
    with pytest.raises(ApiException) as info:
        objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("dup"))
    assert info.value.status == 409
    assert json.loads(info.value.body)["reason"] == "AlreadyExists"


def test_stale_resource_version_is_409_conflict(api, cluster_namespace):
    """Optimistic concurrency: a write based on an old resourceVersion must be refused."""
    objs = client.CustomObjectsApi(api)
    old = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("c"))
    objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "c", {"spec": {"size": 2}})
    old["spec"]["size"] = 3
    with pytest.raises(ApiException) as info:
        objs.replace_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "c", old)
    assert info.value.status == 409
    assert json.loads(info.value.body)["reason"] == "Conflict"
    stale_patch = {"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]}, "spec": {"size": 4}}
    with pytest.raises(ApiException) as info:
        objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "c", stale_patch)
    assert info.value.status == 409


def test_replace_with_current_version_and_generation(api, cluster_namespace):
    """PUT works; a spec change bumps generation, a metadata-only change does not."""
    objs = client.CustomObjectsApi(api)
    obj = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("d"))
    obj["spec"]["size"] = 5
    replaced = objs.replace_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "d", obj)
    assert replaced["spec"]["size"] == 5 and replaced["metadata"]["generation"] == 2
    labelled = objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "d",
                                                   {"metadata": {"labels": {"x": "1"}}})
    assert labelled["metadata"]["generation"] == 2
    assert int(labelled["metadata"]["resourceVersion"]) > int(replaced["metadata"]["resourceVersion"])


def test_status_subresource_is_isolated(api, cluster_namespace):
    """Status writes go through /status only and never bump generation (Kopf's status storage)."""
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("e"))
    main = objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "e",
                                               {"status": {"phase": "Nope"}})
    assert "status" not in main
    status = objs.patch_namespaced_custom_object_status(GROUP, VERSION, cluster_namespace, PLURAL, "e", {
        "status": {"phase": "Running"}, "spec": {"size": 99}})
    assert status["status"] == {"phase": "Running"}
    assert status["spec"]["size"] == 1 and status["metadata"]["generation"] == 1


def test_json_patch_applies_and_bad_ops_are_422(api, cluster_namespace):
    """Kopf uses JSON patch with `test` ops for finalizers; a failed op is 422, not 500."""
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("f"))
    patched = objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "f", [
        {"op": "test", "path": "/spec/size", "value": 1}, {"op": "replace", "path": "/spec/size", "value": 7}],
        _content_type=JSON_PATCH)
    assert patched["spec"]["size"] == 7
    with pytest.raises(ApiException) as info:
        objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "f", [
            {"op": "test", "path": "/spec/size", "value": 1}], _content_type=JSON_PATCH)
    assert info.value.status == 422
    with pytest.raises(ApiException) as info:
        objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "f", [
            {"op": "remove", "path": "/spec/nothing"}], _content_type=JSON_PATCH)
    assert info.value.status == 422


def test_schema_violations_are_422_naming_the_field(api, cluster_namespace):
    objs = client.CustomObjectsApi(api)
    bad = widget("g", size=0)
    bad["spec"]["mode"] = "warp"
    with pytest.raises(ApiException) as info:
        objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, bad)
    body = json.loads(info.value.body)
    assert info.value.status == 422 and body["reason"] == "Invalid"
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.size", "spec.mode"}


def test_unknown_fields_are_pruned(api, cluster_namespace):
    """A real server silently drops fields the structural schema does not know."""
    objs = client.CustomObjectsApi(api)
    body = widget("h")
    body["spec"]["colour"] = "red"
    created = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, body)
    assert "colour" not in created["spec"]


def test_generate_name(api, cluster_namespace):
    objs = client.CustomObjectsApi(api)
    body = widget("")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "gen-"
    created = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, body)
    assert created["metadata"]["name"].startswith("gen-") and len(created["metadata"]["name"]) == 9


def test_label_and_field_selectors(api, cluster_namespace):
    objs = client.CustomObjectsApi(api)
    for name, tier in (("s1", "gold"), ("s2", "silver"), ("s3", "gold")):
        objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL,
                                             widget(name, labels={"tier": tier}))

    def names(**kw: str) -> list[str]:
        items = objs.list_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, **kw)["items"]
        return sorted(i["metadata"]["name"] for i in items)

    assert names(label_selector="tier=gold") == ["s1", "s3"]
    assert names(label_selector="tier in (silver),tier!=gold") == ["s2"]
    assert names(label_selector="!tier") == []
    assert names(field_selector="metadata.name=s2") == ["s2"]
    assert names(field_selector=f"metadata.namespace={cluster_namespace},metadata.name!=s1") == ["s2", "s3"]


def test_namespaces_are_listable(api):
    """`GET /api/v1/namespaces` answered 500 in stock kmock; Kopf lists namespaces."""
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert "default" in names


def test_watch_types_resource_version_and_timeout(api, cluster_namespace):
    """Watch resumes after a list's resourceVersion with proper event types and honours timeoutSeconds."""
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("w0"))
    rv = objs.list_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL)["metadata"]["resourceVersion"]

    def mutate() -> None:
        objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("w1"))
        objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "w1", {"spec": {"size": 2}})
        objs.delete_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "w1")

    thread = threading.Thread(target=mutate)
    thread.start()
    seen = []
    stream = watch.Watch().stream(objs.list_namespaced_custom_object, GROUP, VERSION, cluster_namespace, PLURAL,
                                  resource_version=rv, timeout_seconds=2)
    for event in stream:
        seen.append((event["type"], event["object"]["metadata"]["name"]))
    thread.join()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_delete_with_finalizers_waits_for_them(api, cluster_namespace):
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL,
                                         widget("fin", finalizers=["example.com/hold"]))
    objs.delete_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "fin")
    held = objs.get_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "fin")
    assert held["metadata"]["deletionTimestamp"]
    objs.patch_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "fin",
                                        {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as info:
        objs.get_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "fin")
    assert info.value.status == 404


def test_garbage_collection_cascades_through_owner_references(api, cluster_namespace):
    """Deleting an owner removes its dependents and theirs, like the real garbage collector."""
    objs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    owner = objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("owner"))

    def ref(obj_meta: dict, kind: str, api_version: str) -> dict:
        return {"apiVersion": api_version, "kind": kind, "name": obj_meta["name"], "uid": obj_meta["uid"]}

    child = core.create_namespaced_config_map(cluster_namespace, {"metadata": {
        "name": "child", "ownerReferences": [ref(owner["metadata"], "Widget", f"{GROUP}/{VERSION}")]}})
    core.create_namespaced_config_map(cluster_namespace, {"metadata": {
        "name": "grandchild", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "child",
                                                   "uid": child.metadata.uid}]}})
    core.create_namespaced_config_map(cluster_namespace, {"metadata": {"name": "bystander"}})
    objs.delete_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "owner")

    def left() -> set[str]:
        return {cm.metadata.name for cm in core.list_namespaced_config_map(cluster_namespace).items} - {
            "kube-root-ca.crt"}

    wait_for(lambda: left() == {"bystander"}, timeout=60, what="dependents to be garbage-collected")


def test_kubectl_apply_get_patch_replace_delete(cluster, api, cluster_namespace, tmp_path: Path):
    """The real kubectl works end to end against the cluster (apply needs --validate=false here)."""
    manifest = tmp_path / "w.json"
    manifest.write_text(json.dumps(widget("k", labels={"app": "demo"})))
    ns = ("-n", cluster_namespace)
    assert "created" in cluster.kubectl("apply", "--validate=false", "-f", str(manifest), *ns).stdout
    got = cluster.kubectl_json("get", "widgets", "k", *ns)
    assert got["metadata"]["uid"] and got["metadata"]["resourceVersion"]
    manifest.write_text(json.dumps(widget("k", size=2, labels={"app": "demo"})))
    assert "configured" in cluster.kubectl("apply", "--validate=false", "-f", str(manifest), *ns).stdout
    cluster.kubectl("patch", "widget", "k", *ns, "--type", "merge", "-p", '{"spec": {"size": 3}}')
    cluster.kubectl("patch", "widget", "k", *ns, "--type", "json",
                    "-p", '[{"op": "replace", "path": "/spec/mode", "value": "slow"}]')
    cluster.kubectl("patch", "widget", "k", *ns, "--subresource", "status", "--type", "merge",
                    "-p", '{"status": {"phase": "Done"}}')
    got = cluster.kubectl_json("get", "wg", "k", *ns)
    assert got["spec"] == {"size": 3, "mode": "slow"} and got["status"] == {"phase": "Done"}
    header, row = cluster.kubectl("get", "widgets", *ns).stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "PHASE", "AGE"]  # the CRD's printer columns
    assert row.split()[:3] == ["k", "3", "Done"]
    got["spec"]["size"] = 8
    manifest.write_text(json.dumps(got))
    cluster.kubectl("replace", "--validate=false", "-f", str(manifest), *ns)
    assert cluster.kubectl_json("get", "widgets", "-l", "app=demo", *ns)["items"][0]["spec"]["size"] == 8
    assert cluster.kubectl_json("get", "widgets", "-l", "app=other", *ns)["items"] == []
    cluster.kubectl("delete", "widget", "k", *ns)
    assert cluster.kubectl("get", "widget", "k", *ns, check=False).returncode != 0


def test_builtin_objects_are_checked_with_kubernetes_validate(cluster, cluster_namespace):
    """An invalid built-in object is recorded in sandbox.violations (a real server would reject it)."""
    sandbox = cluster.require_sandbox("violations are recorded by the sandbox")
    before = len(sandbox.violations)
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": 1}}
    cluster.kubectl("apply", "--validate=false", "-n", cluster_namespace, "-f", "-", input=json.dumps(bad))
    assert len(sandbox.violations) == before + 1
    assert "data.a" in sandbox.violations[-1]["errors"][0]
    del sandbox.violations[before:]


REPO = Path(__file__).resolve().parents[2]


def test_example_trainingrun_is_stored_with_uid(cluster):
    """The issue's acceptance check: `kubectl apply -f examples/trainingrun.yaml` stores the resource."""
    example = REPO / "examples" / "trainingrun.yaml"
    if not list((REPO / "crds").glob("*.yaml")) or not example.exists():
        pytest.skip("crds/*.yaml or examples/trainingrun.yaml not generated yet")
    cluster.kubectl("apply", "--validate=false", "-f", str(example))
    got = cluster.kubectl_json("get", "trainingruns")["items"]
    assert got and all(i["metadata"]["uid"] and i["metadata"]["resourceVersion"] for i in got)
    cluster.kubectl("delete", "-f", str(example), "--wait=false")


KOPF_HANDLERS = f'''
import kopf

@kopf.on.create("{GROUP}", "{VERSION}", "{PLURAL}")
def created(spec, patch, **_):
    patch.status["seen"] = spec["size"]
    return {{"doubled": spec["size"] * 2}}

@kopf.on.delete("{GROUP}", "{VERSION}", "{PLURAL}")
def deleted(**_):
    pass
'''


def test_kopf_operator_runs_against_the_cluster(cluster, api, cluster_namespace, tmp_path, monkeypatch):
    """Kopf's finalizer JSON patches, status writes and watches all work (each broke on stock kmock)."""
    from kopf.testing import KopfRunner

    handlers = tmp_path / "widget_handlers.py"
    handlers.write_text(KOPF_HANDLERS)
    cluster.activate(monkeypatch)
    objs = client.CustomObjectsApi(api)
    args = ["run", "--standalone", "--namespace", cluster_namespace, "--verbose", str(handlers)]
    with KopfRunner(args, timeout=60) as runner:
        objs.create_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, widget("kopf", size=3))

        def handled() -> dict | None:
            obj = objs.get_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "kopf")
            return obj if obj.get("status", {}).get("created") else None

        obj = wait_for(handled, timeout=30, what="Kopf to handle the creation")
        assert obj["status"]["seen"] == 3 and obj["status"]["created"] == {"doubled": 6}
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        objs.delete_namespaced_custom_object(GROUP, VERSION, cluster_namespace, PLURAL, "kopf")
        wait_for(lambda: not _exists(objs, cluster_namespace, "kopf"), timeout=30,
                 what="Kopf to release its finalizer")
    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output


def _exists(objs: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        objs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return True
    except ApiException as error:
        assert error.status == 404
        return False
