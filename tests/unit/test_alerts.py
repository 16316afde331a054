"""Slack alerts against a real local HTTP server: payload format (the seed's) and bounded retries."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pitwall_operator import alerts
from pitwall_operator.builders import alerts as payloads


class Webhook:
    """A fake Slack: records every POST body, answers with the queued status codes (then 200)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.codes: list[int] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                webhook.posts.append({"path": self.path, "type": self.headers.get("Content-Type"),
                                      "body": json.loads(self.rfile.read(length))})
                code = webhook.codes.pop(0) if webhook.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"error")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def test_failure_alert_in_seed_format(webhook):
    payload = payloads.failure_payload("rw-train", "DataError", "races.csv: missing column raceId", "f1/rw")
    assert alerts.post(webhook.url, payload, backoff=0)
    (got,) = webhook.posts
    assert got["type"] == "application/json" and got["path"] == "/services/T000/B000/XXX"
    body = got["body"]
    assert body["text"] == ":x: Training job `rw-train` failed"
    (att,) = body["attachments"]
    assert att["color"] == "danger" and att["text"] == "races.csv: missing column raceId"
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Job ID"] == "rw-train" and fields["Error Type"] == "DataError"


def test_regression_alert_in_seed_format(webhook):
    payload = payloads.regression_payload("race_winner", "top1_accuracy", 0.5833, 0.4583)
    assert alerts.post(webhook.url, payload, backoff=0)
    body = webhook.posts[0]["body"]
    assert body["text"] == ":warning: Performance regression detected for `race_winner`"
    (att,) = body["attachments"]
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert att["color"] == "warning"
    assert fields["Previous Accuracy"] == "58.33%" and fields["New Accuracy"] == "45.83%"
    assert fields["Delta"] == "-12.50%" and fields["Metric"] == "top1_accuracy"
    other = payloads.regression_payload("pit_window", "mae_laps", 2.0, 2.5)
    assert {f["title"]: f["value"] for f in other["attachments"][0]["fields"]}["Delta"] == "0.5000"


def test_retries_server_errors_then_succeeds(webhook):
    webhook.codes = [500, 503]
    assert alerts.post(webhook.url, {"text": "x"}, retries=3, backoff=0.01)
    assert len(webhook.posts) == 3


def test_gives_up_after_bounded_retries(webhook):
    webhook.codes = [500, 500, 500, 500]
    assert not alerts.post(webhook.url, {"text": "x"}, retries=3, backoff=0.01)
    assert len(webhook.posts) == 3


def test_client_error_is_not_retried(webhook):
    webhook.codes = [404]
    assert not alerts.post(webhook.url, {"text": "x"}, retries=3, backoff=0.01)
    assert len(webhook.posts) == 1


def test_unreachable_webhook_returns_false_quickly():
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    assert not alerts.post(f"http://127.0.0.1:{port}/x", {"text": "x"}, retries=2, backoff=0.01)
    assert time.monotonic() - started < 5


def test_send_skips_runs_without_slack_and_unwanted_kinds():
    assert alerts.send("default", {}, "Failed", {"text": "x"}) is None
    spec = {"notifications": {"slack": {"webhookSecretRef": {"name": "s", "key": "k"}}, "events": ["Failed"]}}
    assert alerts.webhook_url("default", spec, "Regression") is None  # not asked for; no API call made
