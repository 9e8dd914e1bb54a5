"""Certificates for the aggregation layer and for KEDA's metrics adapter.

The API server proxies ``external.metrics.k8s.io`` to KEDA's adapter with a
client certificate of its own (the front-proxy client, CN front-proxy-client,
signed by a CA that only the adapter trusts for that purpose). KEDA's operator
and adapter talk mutual TLS over gRPC with one certificate that serves both
ends, so it carries serverAuth and clientAuth; the aggregator dials the adapter
as ``keda-metrics-apiserver.keda.svc``, so that name is a SAN as well.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from jobqueue_devkit.certs import _builder, _name, _write_key

KEDA_NAMESPACE = "keda"
KEDA_DNS_NAMES = (
    "localhost",
    f"keda-operator.{KEDA_NAMESPACE}.svc",
    f"keda-operator.{KEDA_NAMESPACE}.svc.cluster.local",
    f"keda-metrics-apiserver.{KEDA_NAMESPACE}.svc",
    f"keda-metrics-apiserver.{KEDA_NAMESPACE}.svc.cluster.local",
)
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True)
class FrontProxyPki:
    directory: Path

    ca_cert = property(lambda self: self.directory / "front-proxy-ca.crt")
    client_cert = property(lambda self: self.directory / "front-proxy-client.crt")
    client_key = property(lambda self: self.directory / "front-proxy-client.key")


@dataclass(frozen=True)
class KedaCerts:
    """KEDA's ``--cert-dir`` layout: ca.crt, tls.crt, tls.key."""

    directory: Path

    ca_cert = property(lambda self: self.directory / "ca.crt")
    cert = property(lambda self: self.directory / "tls.crt")
    key = property(lambda self: self.directory / "tls.key")


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    common_name: str,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name), ca_cert.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage(usages), critical=False
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_front_proxy_pki(directory: Path) -> FrontProxyPki:
    directory.mkdir(parents=True, exist_ok=True)
    pki = FrontProxyPki(directory)
    ca = _ca("front-proxy-ca")
    key, cert = _leaf(ca, FRONT_PROXY_CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(ca[1], pki.ca_cert)
    _write(cert, pki.client_cert)
    _write_key(pki.client_key, key)
    return pki


def make_keda_certs(directory: Path) -> KedaCerts:
    directory.mkdir(parents=True, exist_ok=True)
    certs = KedaCerts(directory)
    ca = _ca("keda-ca")
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    sans += [x509.DNSName(name) for name in KEDA_DNS_NAMES]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    key, cert = _leaf(ca, "keda", usages, sans)
    _write(ca[1], certs.ca_cert)
    _write(cert, certs.cert)
    _write_key(certs.key, key)
    return certs
