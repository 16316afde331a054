"""Slack alerts against a real local HTTP server: payload format and bounded retries."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pitwall_operator import alerts
from pitwall_operator.builders import slack as payloads


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


# --- the webhook URL is checked before use and never logged ----------------------------------------

SPEC = {"notifications": {"slack": {"webhookSecretRef": {"name": "hook", "key": "url"}}, "events": ["Failed"]}}


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://hooks.slack.com/services/T/B/SECRETPART", "scheme"),
    ("http://hooks.slack.com/services/T/B/SECRETPART", "plain http"),
    ("https://metadata.internal/services/T/B/SECRETPART", "not allowed"),
    ("https://hooks.slack.com.evil.example/services/SECRETPART", "not allowed"),
    ("https://user:SECRETPART@hooks.slack.com/services", "credentials"),
    ("https:///services/SECRETPART", "no host"),
    ("https://hooks.slack.com/services/SECRETPART\nX-Injected: 1", "single-line"),
    ("not-a-url-SECRETPART", "scheme"),
])
def test_a_bad_webhook_is_refused_by_reason_without_quoting_it(monkeypatch, caplog, url, why) -> None:
    monkeypatch.delenv("PITWALL_ALERT_WEBHOOK_HOSTS", raising=False)
    monkeypatch.delenv("PITWALL_ALERT_SECRETS", raising=False)
    monkeypatch.setattr(alerts.k8s, "read_secret_key", lambda ns, name, key: url)
    problems: list[str] = []
    with caplog.at_level("DEBUG"):
        assert alerts.send("default", SPEC, "Failed", {"text": "x"}, on_problem=problems.append) is None
    assert len(problems) == 1 and why in problems[0], problems
    assert "SECRETPART" not in problems[0]
    assert "SECRETPART" not in caplog.text, caplog.text


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T/B/X",
    "http://127.0.0.1:8080/services/T/B/X",
    "http://localhost:8080/x",
])
def test_good_webhooks_pass(monkeypatch, url) -> None:
    monkeypatch.delenv("PITWALL_ALERT_WEBHOOK_HOSTS", raising=False)
    monkeypatch.delenv("PITWALL_ALERT_HTTP_HOSTS", raising=False)
    assert alerts.webhook_problem(url) is None


def test_configured_hosts_widen_the_check(monkeypatch) -> None:
    monkeypatch.setenv("PITWALL_ALERT_WEBHOOK_HOSTS", "chat.example.com")
    monkeypatch.setenv("PITWALL_ALERT_HTTP_HOSTS", "10.1.2.3")
    assert alerts.webhook_problem("https://relay.chat.example.com/x") is None
    assert alerts.webhook_problem("http://10.1.2.3:9000/x") is None
    assert alerts.webhook_problem("https://hooks.slack.com/x") is not None


def test_an_unreachable_webhook_is_logged_without_its_url(caplog) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with caplog.at_level("DEBUG"):
        assert not alerts.post(f"http://127.0.0.1:{port}/services/SECRETPART", {"text": "x"}, retries=1, backoff=0)
        assert not alerts.post("http://[bad/services/SECRETPART", {"text": "x"}, retries=1, backoff=0)
    assert "SECRETPART" not in caplog.text, caplog.text


def test_only_the_listed_webhook_secrets_are_read(monkeypatch) -> None:
    """The chart lists the Secrets (alerts.webhookSecrets); the operator asks for no other."""
    monkeypatch.setenv("PITWALL_ALERT_SECRETS", "team-slack")
    read: list[str] = []
    monkeypatch.setattr(alerts.k8s, "read_secret_key", lambda ns, name, key: read.append(name) or "https://hooks.slack.com/x")
    problems: list[str] = []
    assert alerts.send("default", SPEC, "Failed", {"text": "x"}, on_problem=problems.append) is None
    assert read == [] and "alerts.webhookSecrets" in problems[0]
    monkeypatch.setenv("PITWALL_ALERT_SECRETS", "team-slack,hook")
    assert alerts.webhook_url("default", SPEC, "Failed") == "https://hooks.slack.com/x" and read == ["hook"]
