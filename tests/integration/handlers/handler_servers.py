"""Real local servers for the handler tests: an aiohttp webhook receiver and an SMTP sink.

The receiver checks signatures with its own few lines of HMAC code, not with
``jobqueue_worker.handlers.webhook.verify``, so a mistake shared by the signer
and the verifier cannot make the tests pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SECRET = "whsec_" + "k" * 40


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """What the test scripts: per path, a list of responses consumed in order (last repeats)."""

    base: str = ""
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str], float]]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def respond(self, path: str, *steps: tuple[int, dict[str, str], float]) -> None:
        self.script[path] = list(steps)

    def hits(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def signature_ok(header: str, body: bytes, secret: str, now: float) -> bool:
    """Independent Stripe-style check: ``t=<ts>,v1=<hex>`` over ``f"{t}." + body``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        ts = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


@contextlib.asynccontextmanager
async def start_receiver() -> AsyncIterator[Receiver]:
    """An aiohttp app on a free loopback port, answering as ``Receiver.script`` says."""
    state = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ok = signature_ok(
            request.headers.get("X-Jobqueue-Signature", ""), body, SECRET, time.time()
        )
        state.requests.append(Received(request.path, dict(request.headers), body, ok))
        if not ok:
            return web.Response(status=401, text="bad signature")
        steps = state.script.get(request.path, [(200, {}, 0.0)])
        status, headers, delay = steps.pop(0) if len(steps) > 1 else steps[0]
        if delay:
            await asyncio.sleep(delay)
        if 300 <= status < 400:
            raise web.HTTPFound(location=state.url("/redirected"))
        return web.Response(status=status, headers=headers, text=f"status {status}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = int(runner.addresses[0][1])
    state.base = f"http://127.0.0.1:{state.port}"
    try:
        yield state
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- SMTP
@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.raw, policy=default_policy)


class SinkHandler:
    """aiosmtpd handler: captures messages; replies scripted per recipient or for DATA."""

    def __init__(self) -> None:
        self.messages: list[Captured] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        self.messages.append(Captured(str(envelope.mail_from), list(envelope.rcpt_tos), raw))
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    host: str
    port: int
    handler: SinkHandler
    controller: Controller


def free_port() -> int:
    """A loopback port nobody listens on (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(**smtp_kwargs: Any) -> SmtpSink:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    return SmtpSink(host="127.0.0.1", port=port, handler=handler, controller=controller)


# ---------------------------------------------------------------- TLS for STARTTLS tests
def self_signed(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 (IP SAN); returns the PEM to trust and the server context."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobqueue test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "smtp-cert.pem"
    key_path = directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


def password_authenticator(login: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting exactly one LOGIN/PLAIN pair."""

    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == login.encode() and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check
