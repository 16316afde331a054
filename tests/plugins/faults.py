"""API faults injected by the real API server: a validating admission webhook that refuses a share
of one user's writes with a chosen HTTP status (409 Conflict, 500 Internal Error).

The API server itself answers the operator with the injected status, exactly as it would on a
conflict or an etcd hiccup, so the operator's whole client path (kopf's patches included) meets
the fault. `failurePolicy: Ignore`: when the webhook server is gone, nothing else is refused.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import random
import ssl
import tempfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REASONS = {409: "Conflict", 500: "InternalError", 422: "Invalid", 429: "TooManyRequests"}
# What the operator writes: its children, and the run's status and metadata (kopf's own patches).
RULES = [
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["jobs"]},
    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
     "resources": ["configmaps", "serviceaccounts", "secrets"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE"],
     "resources": ["roles", "rolebindings"]},
    {"apiGroups": ["pitwall.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
     "resources": ["trainingruns", "trainingruns/status"]},
]


def _self_signed(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `host` (an IP address or a name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pitwall-fault-webhook")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class FaultWebhook:
    """Refuses `rate` of `user`'s matching writes (while `active`) with one of `codes`; counts them."""

    def __init__(self, user: str, host: str = "127.0.0.1", rate: float = 0.2, codes: tuple[int, ...] = (409, 500),
                 seed: int = 0) -> None:
        self.user, self.rate, self.codes = user, rate, codes
        self.random = random.Random(seed)
        self.active = False
        self.injected: Counter[tuple[str, str, int]] = Counter()
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.cert, key = _self_signed(host)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": hook.decide(review["request"])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        folder = Path(tempfile.mkdtemp(prefix="pitwall-faults-"))
        (folder / "cert.pem").write_bytes(self.cert)
        (folder / "key.pem").write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://{host}:{self.server.server_address[1]}/validate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = request["resource"]["resource"] + (f"/{request['subResource']}" if request.get("subResource") else "")
        key = (request["operation"], resource)
        allowed: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        if (request.get("userInfo") or {}).get("username") != self.user:
            return allowed
        with self._lock:
            self.seen[key] += 1
            if not self.active or self.random.random() >= self.rate:
                return allowed
            code = self.random.choice(self.codes)
            self.injected[(*key, code)] += 1
        return {"uid": request["uid"], "allowed": False,
                "status": {"code": code, "reason": REASONS.get(code, "InternalError"),
                           "message": f"injected fault: {code} on {request['operation']} {resource}"}}

    def configuration(self, name: str = "pitwall-faults") -> dict[str, Any]:
        """The ValidatingWebhookConfiguration that sends the user's writes here."""
        return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": name},
                "webhooks": [{"name": "faults.pitwall.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                              "failurePolicy": "Ignore", "timeoutSeconds": 5, "rules": RULES,
                              "matchConditions": [{"name": "only-the-operator",
                                                   "expression": f"request.userInfo.username == '{self.user}'"}],
                              "clientConfig": {"url": self.url,
                                               "caBundle": base64.b64encode(self.cert).decode()}}]}

    def total(self) -> int:
        return sum(self.injected.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
