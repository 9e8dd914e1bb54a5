"""The ``webhook`` job type: POST a payload's body to its URL, signed, with a timeout.

Payload (a JSON object)::

    {"url": "https://hooks.example/orders",      # http or https only
     "body": {"order": 42, "status": "paid"},    # any JSON; a string is sent as is
     "content_type": "text/plain",               # optional; only for a string body
     "headers": {"X-Tenant": "acme"}}            # optional extra headers (str -> str)

Every request carries (see ``docs/handlers.md`` for the receiver's side):

- ``X-Jobqueue-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the MAC over
  ``f"{t}.".encode() + body`` with ``WEBHOOK_SIGNING_SECRET``. Signing the exact
  bytes sent (not a re-serialisation) is what lets the receiver verify before it
  parses; the timestamp inside the MAC lets it refuse replays older than a few
  minutes (Stripe's scheme, so existing verification code fits).
- ``Idempotency-Key: <job id>``: the same on every attempt and redelivery, so a
  receiver can drop the duplicates that at-least-once delivery implies.
- ``X-Jobqueue-Attempt: <n>``, for the receiver's logs.

Outcomes: 2xx completes the job. 408, 425, 429 and 5xx, timeouts and network
errors raise ``Retry`` (with the server's ``Retry-After`` as the delay when it
sends one). Any other status, including redirects (never followed: a POST
silently turned into a GET, or a redirect into the private network, is worse
than a failure), raises ``PermanentError``: retrying a 404 only delays the dead
letter that someone has to look at.

Unless ``WEBHOOK_ALLOW_PRIVATE_NETWORKS=true``, URLs that are or resolve to
loopback, private, link-local or otherwise non-global addresses are refused
(SSRF: job payloads often carry URLs that users typed). The check runs on the
addresses actually connected to, so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import Field, JsonValue, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from yarl import URL

from jobqueue_worker.backoff import BackoffPolicy, Jitter
from jobqueue_worker.errors import PermanentError, Retry
from jobqueue_worker.registry import Job

SIGNATURE_HEADER: Final = "X-Jobqueue-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
ATTEMPT_HEADER: Final = "X-Jobqueue-Attempt"
SIGNATURE_VERSION: Final = "v1"

#: Retries spread over roughly an hour: receivers are often down for minutes
#: (a deploy), and equal jitter keeps a fleet of workers from retrying in step.
WEBHOOK_BACKOFF: Final = BackoffPolicy(
    retries=8, base_s=5.0, factor=2.0, cap_s=900.0, jitter=Jitter.EQUAL
)

# Statuses that say "not now" rather than "never".
_TRANSIENT_4XX: Final = frozenset({408, 425, 429})
# The handler owns these; a payload may not forge or break them.
_RESERVED: Final = frozenset(
    h.lower()
    for h in (
        SIGNATURE_HEADER,
        IDEMPOTENCY_HEADER,
        ATTEMPT_HEADER,
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Connection",
    )
)
_MAX_ERROR_BODY: Final = 200


class WebhookSettings(BaseSettings):
    """``WEBHOOK_*`` environment variables, validated when the handler is registered."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore", frozen=True)

    signing_secret: SecretStr = Field(
        description="HMAC-SHA256 key shared with the receivers; at least 32 characters",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="whole request, connect to last byte"
    )
    allow_private_networks: bool = Field(
        default=False,
        description="allow loopback/private targets (development, in-cluster receivers)",
    )
    max_retry_after_s: float = Field(
        default=3600.0, ge=0, description="cap on a server's Retry-After"
    )
    user_agent: str = "jobqueue-webhook/1"

    @field_validator("signing_secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        # A short secret can be brute-forced offline from one signed request.
        if len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return v


# ---------------------------------------------------------------- signatures
def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SIGNATURE_VERSION}={mac}"


def verify(
    secret: str | bytes,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = 300.0,
) -> bool:
    """Receiver side: True if ``header`` signs ``body`` with ``secret`` within the tolerance.

    Accepts several ``v1=`` entries (a sender rotating secrets may send one per
    secret) and compares in constant time. A timestamp outside ``tolerance_s``
    of ``now`` fails, which is what makes a captured request useless later.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if not value.isdigit():
                return False
            timestamp = int(value)
        elif key == SIGNATURE_VERSION:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rsplit("=", 1)[1]
    # No early exit: every candidate is compared, in constant time each.
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(candidate.encode(), expected.encode())
    return ok


# ---------------------------------------------------------------- payload
@dataclass(frozen=True)
class WebhookRequest:
    """A validated payload: what will be sent, byte for byte."""

    url: URL
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def redact(url: URL) -> str:
    """The URL for logs and errors: no credentials, query or fragment (they carry tokens)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def check_url(raw: object) -> URL:
    """Only absolute http(s) URLs with a host; ``PermanentError`` otherwise."""
    if not isinstance(raw, str) or not raw:
        raise PermanentError("webhook payload needs a 'url' string")
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"webhook url is not a URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise PermanentError(f"webhook url must be http or https, not {url.scheme or 'relative'!r}")
    if not url.host:
        raise PermanentError("webhook url has no host")
    return url


def parse_payload(payload: JsonValue) -> WebhookRequest:
    """Validate a job payload into a request; bad input is permanent (it will not improve)."""
    if not isinstance(payload, dict):
        raise PermanentError("webhook payload must be an object with 'url' and 'body'")
    url = check_url(payload.get("url"))
    if "body" not in payload:
        raise PermanentError("webhook payload needs a 'body'")
    body = payload["body"]
    content_type = payload.get("content_type")
    if isinstance(body, str):
        data = body.encode()
        if content_type is None:
            content_type = "text/plain; charset=utf-8"
    else:
        if content_type is not None:
            raise PermanentError("'content_type' is only for a string body; JSON is sent as JSON")
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        content_type = "application/json"
    if (
        not isinstance(content_type, str)
        or not content_type
        or any(c in content_type for c in "\r\n\0")
    ):
        raise PermanentError("'content_type' must be a one-line string")
    extra = payload.get("headers") or {}
    if not isinstance(extra, dict):
        raise PermanentError("'headers' must be an object of strings")
    headers: dict[str, str] = {}
    for name, value in extra.items():
        if not isinstance(value, str) or any(c in name + value for c in "\r\n\0"):
            raise PermanentError(f"header {name!r} must be a one-line string")
        if name.lower() in _RESERVED:
            raise PermanentError(f"header {name!r} is set by the webhook handler")
        headers[name] = value
    return WebhookRequest(url=url, body=data, content_type=content_type, headers=headers)


# ---------------------------------------------------------------- SSRF guard
class BlockedAddressError(PermanentError):
    """The target is (or resolves only to) an address the settings do not allow."""


def is_public(address: str) -> bool:
    """True for globally routable unicast addresses (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default, then drops every non-public address.

    aiohttp connects only to what the resolver returns, so filtering here (not
    in a pre-flight lookup) closes the DNS-rebinding gap between check and use.
    Raising a non-``OSError`` keeps aiohttp from wrapping it as a retryable
    connection error.
    """

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if is_public(r["host"])]
        if not allowed:
            raise BlockedAddressError(f"{host} resolves only to non-public addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _check_literal(url: URL, allow_private: bool) -> None:
    # aiohttp never asks the resolver about an IP literal, so check it here.
    assert url.host is not None
    try:
        ipaddress.ip_address(url.host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if not allow_private and not is_public(url.host):
        raise BlockedAddressError(
            f"{url.host} is not a public address (WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"
        )


# ---------------------------------------------------------------- delivery
def retry_after_s(value: str | None, *, now: float, cap_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap_s)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), cap_s)


async def deliver(
    job: Job,
    settings: WebhookSettings,
    *,
    clock: Callable[[], float] = time.time,
) -> dict[str, JsonValue]:
    """Send one attempt of ``job``; return ``{"status", "elapsed_ms"}`` or raise.

    A fresh session per attempt: the registry has no start/stop hooks to own a
    long-lived one, and a webhook fan-out rarely hits the same host twice in a
    row, so pooling would buy little.
    """
    request = parse_payload(job.payload)
    _check_literal(request.url, settings.allow_private_networks)
    timestamp = int(clock())
    headers = {
        **request.headers,
        "Content-Type": request.content_type,
        "User-Agent": settings.user_agent,
        SIGNATURE_HEADER: sign(settings.signing_secret.get_secret_value(), timestamp, request.body),
        IDEMPOTENCY_HEADER: job.id,
        ATTEMPT_HEADER: str(job.attempt),
    }
    where = redact(request.url)
    resolver = None if settings.allow_private_networks else PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, limit=1, force_close=True)
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=settings.timeout_s)
            ) as session,
            session.post(
                request.url, data=request.body, headers=headers, allow_redirects=False
            ) as response,
        ):
            status = response.status
            if 200 <= status < 300:
                return {"status": status, "elapsed_ms": int((time.monotonic() - started) * 1000)}
            snippet = (await response.content.read(_MAX_ERROR_BODY)).decode(errors="replace")
            message = f"POST {where}: HTTP {status} {snippet!r}"
            if status >= 500 or status in _TRANSIENT_4XX:
                delay = retry_after_s(
                    response.headers.get("Retry-After"),
                    now=clock(),
                    cap_s=settings.max_retry_after_s,
                )
                raise Retry(delay, message)
            raise PermanentError(message)
    except (Retry, PermanentError):
        raise
    except aiohttp.InvalidURL as exc:
        raise PermanentError(f"POST {where}: invalid URL: {exc}") from exc
    except TimeoutError as exc:
        raise Retry(None, f"POST {where}: no response within {settings.timeout_s} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise Retry(None, f"POST {where}: {type(exc).__name__}: {exc}") from exc


def make_handler(
    settings: WebhookSettings, *, clock: Callable[[], float] = time.time
) -> Callable[[Job], Awaitable[dict[str, JsonValue]]]:
    """An ``async def`` closure, so the registry sees a coroutine function and runs it on the loop.

    (An object with an async ``__call__`` would look synchronous to
    ``inspect.iscoroutinefunction`` and be sent to the thread pool.)
    """

    async def webhook(job: Job) -> dict[str, JsonValue]:
        return await deliver(job, settings, clock=clock)

    return webhook
