"""Registration a retried pod does not repeat, and promotion that concurrent runs cannot race.

MLflow's registry has no compare-and-set: two runs of one model finishing together could both
read the old champion, both decide to promote, and leave the worse one under the alias. In a
pod, promotion therefore happens under a Kubernetes Lease (`PITWALL_PROMOTION_LEASE`, one per
namespace, made by the operator; the run's Role may get and update only that Lease): the API
server's resourceVersion check makes taking it atomic, so decisions are made one at a time and
each sees the champion its predecessor chose. A laptop run has no cluster and no lease.

A pod killed after registering is started again by its Job; the version it registered is found
by the run's uid (`PITWALL_TRAININGRUN_UID`, a version tag) and reused, so one run is one version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pitwall_api.contract import MLFLOW_RUN_UID_TAG, PROMOTION_LEASE_ENV, RUN_NAMESPACE_ENV, RUN_UID_ENV

from pitwall_trainer.errors import PitwallError

log = logging.getLogger(__name__)

LEASE_ENV, NAMESPACE_ENV, RUN_TAG = PROMOTION_LEASE_ENV, RUN_NAMESPACE_ENV, MLFLOW_RUN_UID_TAG
LEASE_SECONDS = 60  # a holder that died frees the lease after this long
WAIT_SECONDS = 600.0  # how long a promotion waits for the lease before the attempt fails (retryable)


class LeaseTimeout(PitwallError):
    """The promotion lease stayed taken: retryable (exit 1), the Job tries again."""

    exit_code = 1


def run_uid() -> str | None:
    return os.environ.get(RUN_UID_ENV) or None


def version_of_this_run(client: Any, name: str) -> Any | None:
    """The version an earlier attempt of this TrainingRun registered, if any (None on a laptop)."""
    uid = run_uid()
    if not uid:
        return None
    with contextlib.suppress(Exception):  # a model that does not exist yet has no versions
        versions = client.search_model_versions(f"name='{name}' and tags.`{RUN_TAG}` = '{uid}'")
        live = [v for v in versions if getattr(v, "status", "READY") == "READY"]
        if live:
            return max(live, key=lambda v: int(v.version))
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def _expired(spec: Any) -> bool:
    renewed = spec.renew_time or spec.acquire_time
    if not spec.holder_identity or renewed is None:
        return True
    return renewed + timedelta(seconds=spec.lease_duration_seconds or LEASE_SECONDS) < _now()


@contextlib.contextmanager
def promotion_lease(api: Any = None, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the namespace's promotion Lease (when in a pod that has one) for the block."""
    name, namespace = os.environ.get(LEASE_ENV), os.environ.get(NAMESPACE_ENV)
    if not (name and namespace):
        yield  # a laptop run: nothing else promotes through this process
        return
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if api is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
        api = client.CoordinationV1Api()
    me = (f"{os.environ.get('PITWALL_TRAININGRUN_NAME', 'trainer')}/{socket.gethostname()}/{os.getpid()}"
          f"/{threading.get_ident()}")
    deadline = time.monotonic() + wait
    while True:
        lease = api.read_namespaced_lease(name, namespace)
        if _expired(lease.spec) or lease.spec.holder_identity == me:
            now = _now()
            lease.spec.holder_identity, lease.spec.acquire_time, lease.spec.renew_time = me, now, now
            lease.spec.lease_duration_seconds = LEASE_SECONDS
            try:  # the resourceVersion read above makes this a compare-and-set
                api.replace_namespaced_lease(name, namespace, lease)
                break
            except ApiException as error:
                if error.status != 409:
                    raise
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"the promotion lease {namespace}/{name} stayed held by "
                               f"{lease.spec.holder_identity} for {wait:.0f}s")
        time.sleep(0.5)
    log.info("holding the promotion lease %s/%s", namespace, name)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # an expired lease frees itself anyway
            lease = api.read_namespaced_lease(name, namespace)
            if lease.spec.holder_identity == me:
                lease.spec.holder_identity = None
                api.replace_namespaced_lease(name, namespace, lease)
