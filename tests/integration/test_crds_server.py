"""The CRDs on a real API server: every CEL rule compiles, and the server and the models agree.

tests/unit/test_crds.py checks the same bodies against an emulation of the server's schema and
CEL checks; here the real kube-apiserver decides (`kubectl apply --dry-run=server`).
"""

from __future__ import annotations

import json

import pytest

from tests.plugins.cluster import Cluster
from tests.unit.test_crds import AGREEMENT, MODEL_ONLY, model_errors

pytestmark = [pytest.mark.integration]


def server_refusal(cluster: Cluster, body: dict) -> str:
    """The server's error for `body` ("" when it admits it)."""
    result = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", input=json.dumps(body),
                             check=False)
    return "" if result.returncode == 0 else result.stderr


@pytest.mark.parametrize("body", AGREEMENT, ids=lambda b: str(b["spec"])[-60:])
def test_the_real_server_and_the_models_agree(cluster: Cluster, body: dict) -> None:
    refusal, models = server_refusal(cluster, body), model_errors(body)
    assert bool(refusal) == bool(models), f"server: {refusal}\nmodels: {models}"
    if refusal:  # and the server names the field the models blame (or its parent object)
        fields = {m.split(":")[0] for m in models}
        assert any(f.split("[")[0].rsplit(".", 1)[0] in refusal or f.split("[")[0] in refusal for f in fields), (
            f"server: {refusal}\nmodels: {models}")


@pytest.mark.parametrize("body", MODEL_ONLY, ids=lambda b: str(b["spec"])[-60:])
def test_what_only_the_models_check_is_admitted_by_the_server(cluster: Cluster, body: dict) -> None:
    assert model_errors(body), "the models must refuse it"
    refusal = server_refusal(cluster, body)
    if body["spec"].get("data", {}).get("seasons") == [2024, 2024]:
        assert "Duplicate value" in refusal  # a `set` list: the real server refuses duplicates too
    else:
        assert refusal == "", refusal
