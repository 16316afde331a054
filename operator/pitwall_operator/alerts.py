"""Slack alerts: webhook URL from the Secret named in spec.notifications, bounded retries, never raises.

Posting runs on a small background pool so a slow or dead webhook never holds a kopf worker
(handlers must not sleep); the retry loop lives there.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pitwall_operator import k8s

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slack")
RETRIES = 3
TIMEOUT = 5.0
BACKOFF = 0.5  # seconds, doubled per retry


def post(url: str, payload: dict[str, Any], retries: int = RETRIES, backoff: float = BACKOFF) -> bool:
    """POST the JSON payload; retry 5xx, 429 and network errors; True when Slack said 2xx."""
    body = json.dumps(payload).encode()
    for attempt in range(1, retries + 1):
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
                if 200 <= response.status < 300:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                log.warning("Slack webhook refused the alert (%s); not retrying", exc.code)
                return False
            log.warning("Slack webhook answered %s (attempt %d/%d)", exc.code, attempt, retries)
        except (OSError, ValueError) as exc:
            log.warning("Slack webhook unreachable: %s (attempt %d/%d)", exc, attempt, retries)
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    return False


class AlertNotConfigured(Exception):
    """The run asks for Slack alerts but its webhook Secret cannot be read: said on the run."""


def webhook_url(namespace: str, spec: dict[str, Any], kind: str) -> str | None:
    """The webhook URL when this run wants alerts of this kind (Failed, Regression, ...), else None."""
    notifications = spec.get("notifications") or {}
    wanted = notifications.get("events") or notifications.get("on") or ["Failed", "Regression"]
    ref = (notifications.get("slack") or {}).get("webhookSecretRef") or {}
    if kind not in wanted or not ref.get("name") or not ref.get("key"):
        return None
    where = f"Secret {namespace}/{ref['name']} key {ref['key']!r}"
    try:
        url = k8s.read_secret_key(namespace, ref["name"], ref["key"])
    except k8s.ApiError as exc:
        raise AlertNotConfigured(f"{kind} alert not sent: cannot read the Slack webhook {where}: {exc}") from exc
    if not url:
        raise AlertNotConfigured(f"{kind} alert not sent: the Slack webhook {where} does not exist")
    return url


def send(namespace: str, spec: dict[str, Any], kind: str, payload: dict[str, Any],
         on_problem: Callable[[str], None] | None = None) -> Future | None:
    """Alert in the background; returns the Future (tests wait on it) or None when not sent.

    `on_problem` hears why an alert the run asked for could not be sent (e.g. a missing Secret).
    """
    try:
        url = webhook_url(namespace, spec, kind)
    except AlertNotConfigured as exc:
        log.warning("%s", exc)
        if on_problem:
            on_problem(str(exc))
        return None
    except Exception:  # noqa: BLE001 - an alert must never break a reconcile
        log.exception("alert lookup failed")
        return None
    if url is None:
        return None
    return _pool.submit(_safe_post, url, payload)


def _safe_post(url: str, payload: dict[str, Any]) -> bool:
    try:
        return post(url, payload)
    except Exception:  # noqa: BLE001
        log.exception("Slack alert failed")
        return False
