"""A self-signed serving certificate for the admission webhook, made with ``cryptography``.

kopf's own self-signed certificates need ``certbuilder`` and ``oscrypto``; the
operator already depends on ``cryptography``. The certificate is its own CA: the
webhook configuration carries it as ``caBundle``. For several replicas behind
one Service, mount one certificate from a Secret instead (``JQO_WEBHOOK_CERT_DIR``),
or each replica would publish a different ``caBundle``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


def self_signed(hostnames: Sequence[str], now: dt.datetime) -> tuple[bytes, bytes]:
    """(certificate PEM, unencrypted key PEM) valid for every name or IP in ``hostnames``."""
    names = list(dict.fromkeys(h for h in hostnames if h))
    if not names:
        raise ValueError("a webhook certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
