"""Slack alerts: webhook URL from the Secret named in spec.notifications, bounded retries, never raises.

Posting runs on a small background pool so a slow or dead webhook never holds a kopf worker
(handlers must not sleep); the retry loop lives there.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from pitwall_operator import k8s
from pitwall_operator.config import Settings

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slack")
RETRIES = 3
TIMEOUT = 5.0
BACKOFF = 0.5  # seconds, doubled per retry


def post(url: str, payload: dict[str, Any], retries: int = RETRIES, backoff: float = BACKOFF) -> bool:
    """POST the JSON payload; retry 5xx, 429 and network errors; True when Slack said 2xx."""
    body = json.dumps(payload).encode()
    for attempt in range(1, retries + 1):
        try:
            req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
                if 200 <= response.status < 300:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                log.warning("Slack webhook refused the alert (%s); not retrying", exc.code)
                return False
            log.warning("Slack webhook answered %s (attempt %d/%d)", exc.code, attempt, retries)
        except (OSError, ValueError) as exc:  # the type only: urllib's text may quote the URL
            log.warning("Slack webhook unreachable: %s (attempt %d/%d)", type(exc).__name__, attempt, retries)
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    return False


class AlertNotConfigured(Exception):
    """The run asks for Slack alerts but its webhook Secret cannot be read: said on the run."""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def webhook_problem(url: str, settings: Settings | None = None) -> str | None:
    """Why this webhook URL must not be called, else None. Never quotes the URL: it is a credential.

    The URL comes from a Secret any run author controls, so without the check the operator would
    POST wherever it is told (inside the cluster too). https to an allowed host (Slack by default;
    a subdomain counts), or plain http to loopback or a host listed for http.
    """
    settings = settings or Settings.from_env()
    hosts, http_hosts = settings.alert_webhook_hosts, settings.alert_http_hosts
    if not isinstance(url, str) or any(ch.isspace() or ord(ch) < 32 for ch in url.strip()):
        return "the webhook URL is not a single-line URL"
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "the webhook URL cannot be parsed"
    if parts.scheme not in ("https", "http"):
        return f"the webhook URL's scheme must be https, not {parts.scheme or 'none'!r}"
    if not host:
        return "the webhook URL has no host"
    if parts.username is not None:
        return "the webhook URL must not carry credentials before its host"
    if parts.scheme == "http":
        return None if _loopback(host) or host in http_hosts else f"plain http to {host} is not allowed (use https)"
    if hosts and not any(host == h or host.endswith("." + h) for h in hosts):
        return f"the webhook host {host} is not allowed (allowed: {', '.join(hosts)})"
    return None


def webhook_url(namespace: str, spec: dict[str, Any], kind: str) -> str | None:
    """The webhook URL when this run wants alerts of this kind (Failed, Regression, ...), else None.

    Only a Secret the chart lists (alerts.webhookSecrets) is read: RBAC refuses the others anyway,
    and saying so names the fix instead of a 403.
    """
    notifications = spec.get("notifications") or {}
    wanted = notifications.get("events") or notifications.get("on") or ["Failed", "Regression"]
    ref = (notifications.get("slack") or {}).get("webhookSecretRef") or {}
    if kind not in wanted or not ref.get("name") or not ref.get("key"):
        return None
    where = f"Secret {namespace}/{ref['name']} key {ref['key']!r}"
    settings = Settings.from_env()
    if settings.alert_secrets is not None and ref["name"] not in settings.alert_secrets:
        raise AlertNotConfigured(f"{kind} alert not sent: the operator may read only the webhook Secrets "
                                 f"listed in the chart's alerts.webhookSecrets, not {where}")
    try:
        url = k8s.read_secret_key(namespace, ref["name"], ref["key"])
    except k8s.ApiError as exc:
        raise AlertNotConfigured(f"{kind} alert not sent: cannot read the Slack webhook {where}: {exc}") from exc
    if not url:
        raise AlertNotConfigured(f"{kind} alert not sent: the Slack webhook {where} does not exist")
    problem = webhook_problem(url, settings)
    if problem:  # the reason, never the value
        raise AlertNotConfigured(f"{kind} alert not sent: the Slack webhook in {where}: {problem}")
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
    except Exception as exc:  # noqa: BLE001 - an alert must never break a reconcile
        log.warning("alert lookup failed: %s", type(exc).__name__)  # no traceback: it may hold the URL
        return None
    if url is None:
        return None
    return _pool.submit(_safe_post, url, payload)


def _safe_post(url: str, payload: dict[str, Any]) -> bool:
    try:
        return post(url, payload)
    except Exception as exc:  # noqa: BLE001
        log.warning("Slack alert failed: %s", type(exc).__name__)  # no traceback: it may hold the URL
        return False
