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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

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
    server = site._server
    assert server is not None
    assert server.sockets
    state.port = int(server.sockets[0].getsockname()[1])
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
