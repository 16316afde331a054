"""The sandbox's PKI: one CA, the API server's serving certificate, client certificates, the
service-account signing key. Written once per state folder, as kubeadm lays out /etc/kubernetes/pki.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


class PKI:
    """Certificates under `folder`; `ensure()` keeps the CA and signing key, issues the rest anew."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = Pair(folder / "ca.crt", folder / "ca.key")
        self.serving = Pair(folder / "apiserver.crt", folder / "apiserver.key")
        self.admin = Pair(folder / "admin.crt", folder / "admin.key")
        self.kubelet_client = Pair(folder / "apiserver-kubelet-client.crt", folder / "apiserver-kubelet-client.key")
        self.kubelet_serving = Pair(folder / "kubelet.crt", folder / "kubelet.key")
        self.sa_key = folder / "sa.key"
        self.sa_pub = folder / "sa.pub"

    def ensure(self, service_ip: str, node_ip: str = "127.0.0.1") -> PKI:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.ca.cert.exists():
            self._ca()
        ca_key = serialization.load_pem_private_key(self.ca.key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert.read_bytes())
        hosts = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"]
        ips = sorted({"127.0.0.1", service_ip, node_ip})
        wanted = [
            (self.serving, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, hosts, ips),
            (self.admin, _name("pitwall-sandbox-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, [], []),
            (self.kubelet_client, _name("kube-apiserver-kubelet-client", "system:masters"),
             ExtendedKeyUsageOID.CLIENT_AUTH, [], []),
            (self.kubelet_serving, _name("sandbox-node"), ExtendedKeyUsageOID.SERVER_AUTH, ["localhost"],
             sorted({"127.0.0.1", node_ip})),
        ]
        for pair, subject, usage, dns, addresses in wanted:  # anew each start: the node IP may differ
            self._leaf(ca_cert, ca_key, pair, subject, usage, dns, addresses)
        if not self.sa_key.exists():
            key = _key()
            _write_key(key, self.sa_key)
            self.sa_pub.write_bytes(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return self

    def _ca(self) -> None:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name("pitwall-sandbox-ca")).issuer_name(
            _name("pitwall-sandbox-ca")).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
        _write_key(key, self.ca.key)
        self.ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, pair: Pair, subject: x509.Name,
              usage: x509.ObjectIdentifier, dns: list[str], ips: list[str]) -> None:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if dns or ips:
            names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        _write_key(key, pair.key)
        pair.cert.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
