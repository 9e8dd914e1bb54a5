"""Certificates for a TLS-only Redis: a private CA, a server and a client certificate.

Made with ``cryptography`` in a directory of the test's own; nothing is trusted
system-wide. The server certificate names ``redis.test`` and 127.0.0.1, so a
client can check it either by address or by a server name it is told.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from jobqueue_devkit.certs import _builder, _name, _write_key

SERVER_NAME = "redis.test"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, the server's pair and a client's pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_args(self, port: int) -> tuple[str, ...]:
        """redis-server options: TLS on ``port``, plaintext off, client certificates required."""
        return (
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "yes",
            "--tls-replication", "yes",
        )  # fmt: skip

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    _write_key(path.with_suffix(".key"), key)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_certs(directory: Path) -> TlsFiles:
    """A fresh CA, a server certificate for redis.test/127.0.0.1 and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("jobqueue test CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "ca.crt", ca, ca_key)

    def leaf(name: str, usage: list[x509.ObjectIdentifier], sans: list[x509.GeneralName]) -> Path:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(name), ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage(usage), critical=False
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _write(directory / f"{name}.crt", builder.sign(ca_key, hashes.SHA256()), key)

    server = leaf(
        SERVER_NAME,
        # Client use too: a replica presents its server certificate to its master.
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = leaf("client", [ExtendedKeyUsageOID.CLIENT_AUTH], [])
    return TlsFiles(
        ca=directory / "ca.crt",
        server_cert=server,
        server_key=server.with_suffix(".key"),
        client_cert=client,
        client_key=client.with_suffix(".key"),
    )
