"""Names, labels and owner references shared by every child of a TrainingRun."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pitwall_api.contract import RUN_LABEL  # noqa: F401 - re-exported

from pitwall_operator.config import GROUP, KIND, VERSION

KUEUE_PREFIX = "kueue.x-k8s.io/"
KUEUE_QUEUE = KUEUE_PREFIX + "queue-name"
PROMOTION_LEASE = "pitwall-promotion"  # one per namespace; trainers get its name as PITWALL_PROMOTION_LEASE


@dataclass(frozen=True)
class RunRef:
    """The owning TrainingRun: enough to name, label and own its children."""

    name: str
    namespace: str
    uid: str
    labels: tuple[tuple[str, str], ...] = ()  # the run's own metadata.labels

    @classmethod
    def from_body(cls, body: Any) -> RunRef:
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid") or "",
            labels=tuple(sorted((meta.get("labels") or {}).items())),
        )


def job_name(run: str) -> str:
    return f"{run}-train"


def ray_cluster_name(run: str) -> str:
    return f"{run}-ray"


def spec_configmap_name(run: str) -> str:
    return f"{run}-spec"


def access_name(run: str) -> str:
    """A run's own ServiceAccount, Role and RoleBinding (`builders/trainer_access.py`)."""
    return f"{run}-trainer"


def trainer_service_account(run: RunRef, spec: dict[str, Any]) -> str:
    """The account the run's pods use: the spec's own, else the run's own."""
    return spec.get("serviceAccountName") or access_name(run.name)


def labels(run: RunRef, component: str) -> dict[str, str]:
    """Selector-friendly labels; `pitwall.io/training-run` finds every child of one run."""
    return {
        "app.kubernetes.io/name": "pitwall",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "pitwall-operator",
        "app.kubernetes.io/instance": run.name,
        RUN_LABEL: run.name,
    }


def kueue_labels(run: RunRef, spec: dict[str, Any]) -> dict[str, str]:
    """The run's `kueue.x-k8s.io/*` labels passed through, plus spec.queueName (which wins)."""
    out = {k: v for k, v in run.labels if k.startswith(KUEUE_PREFIX)}
    if spec.get("queueName"):
        out[KUEUE_QUEUE] = str(spec["queueName"])
    return out


def owner_reference(run: RunRef) -> dict[str, Any]:
    """Controller reference: garbage collection removes the child with its run."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(run: RunRef, name: str, component: str, extra_labels: dict[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": run.namespace,
        "labels": {**labels(run, component), **(extra_labels or {})},
    }
    if run.uid:
        meta["ownerReferences"] = [owner_reference(run)]
    return meta
