"""The webhook job type against a real aiohttp server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from handler_servers import SECRET, Receiver, free_port
from pydantic import JsonValue

from jobqueue_worker.eager import EagerProducer
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.errors import ConfigError, PermanentError, Retry
from jobqueue_worker.handlers import register
from jobqueue_worker.handlers.webhook import (
    BlockedAddressError,
    WebhookSettings,
    deliver,
    is_public,
    parse_payload,
    retry_after_s,
    sign,
    verify,
)
from jobqueue_worker.registry import Job, Registry


def settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "signing_secret": SECRET,
        "timeout_s": 2.0,
        "allow_private_networks": True,  # the receiver is on loopback
    }
    values.update(overrides)
    return WebhookSettings(**values)


def job(payload: JsonValue, *, id: str = "job-1", attempt: int = 1) -> Job:
    return Job(
        id=id,
        type="webhook",
        queue="hooks",
        payload=payload,
        priority=5,
        attempt=attempt,
        max_attempts=9,
        deliveries=attempt,
    )


# ---------------------------------------------------------------- success
async def test_delivers_signed_exact_body_with_idempotency_key(receiver: Receiver) -> None:
    body: dict[str, JsonValue] = {"order": 42, "status": "paid", "note": "café"}
    payload: JsonValue = {
        "url": receiver.url("/orders?tenant=acme"),
        "body": body,
        "headers": {"X-Tenant": "acme"},
    }

    result = await deliver(job(payload, id="abc123", attempt=3), settings())

    assert result["status"] == 200
    assert isinstance(result["elapsed_ms"], int)
    (hit,) = receiver.hits("/orders")
    assert hit.signature_ok, hit.headers
    assert json.loads(hit.body) == body
    assert hit.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert hit.headers["Idempotency-Key"] == "abc123"
    assert hit.headers["X-Jobqueue-Attempt"] == "3"
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["X-Tenant"] == "acme"
    ts = int(hit.headers["X-Jobqueue-Signature"].split(",")[0].removeprefix("t="))
    assert abs(ts - time.time()) < 5


async def test_string_body_is_sent_verbatim_with_its_content_type(receiver: Receiver) -> None:
    payload: JsonValue = {
        "url": receiver.url("/raw"),
        "body": "a=1&b=2",
        "content_type": "application/x-www-form-urlencoded",
    }
    await deliver(job(payload), settings())
    (hit,) = receiver.hits("/raw")
    assert hit.body == b"a=1&b=2"
    assert hit.signature_ok
    assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    # The receiver answers 401 to a bad signature: permanent, and it proves the check is real.
    with pytest.raises(PermanentError, match="401"):
        await deliver(
            job({"url": receiver.url("/x"), "body": {}}), settings(signing_secret="z" * 40)
        )
    (hit,) = receiver.hits("/x")
    assert not hit.signature_ok


# ---------------------------------------------------------------- retry or give up
@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_transient_statuses_raise_retry(receiver: Receiver, status: int) -> None:
    receiver.respond("/flaky", (status, {}, 0.0))
    with pytest.raises(Retry, match=f"HTTP {status}") as info:
        await deliver(job({"url": receiver.url("/flaky"), "body": {"n": 1}}), settings())
    assert info.value.delay_s is None


async def test_retry_after_seconds_becomes_the_retry_delay(receiver: Receiver) -> None:
    receiver.respond("/busy", (429, {"Retry-After": "7"}, 0.0))
    with pytest.raises(Retry) as info:
        await deliver(job({"url": receiver.url("/busy"), "body": {}}), settings())
    assert info.value.delay_s == 7.0


async def test_retry_after_is_capped(receiver: Receiver) -> None:
    receiver.respond("/down", (503, {"Retry-After": "86400"}, 0.0))
    with pytest.raises(Retry) as info:
        await deliver(
            job({"url": receiver.url("/down"), "body": {}}), settings(max_retry_after_s=60)
        )
    assert info.value.delay_s == 60.0


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_other_4xx_are_permanent(receiver: Receiver, status: int) -> None:
    receiver.respond("/nope", (status, {}, 0.0))
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        await deliver(job({"url": receiver.url("/nope"), "body": {}}), settings())
    assert len(receiver.hits("/nope")) == 1


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.respond("/moved", (302, {}, 0.0))
    with pytest.raises(PermanentError, match="HTTP 302"):
        await deliver(job({"url": receiver.url("/moved"), "body": {}}), settings())
    assert receiver.hits("/redirected") == []


async def test_slow_receiver_times_out_as_retry(receiver: Receiver) -> None:
    receiver.respond("/slow", (200, {}, 1.5))
    started = time.monotonic()
    with pytest.raises(Retry, match=r"no response within 0\.3 s"):
        await deliver(job({"url": receiver.url("/slow"), "body": {}}), settings(timeout_s=0.3))
    assert time.monotonic() - started < 2.0


async def test_connection_refused_is_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(Retry, match=r"ClientConnectorError|Connect"):
        await deliver(job({"url": url, "body": {}}), settings())


# ---------------------------------------------------------------- refusing targets
@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example/upload",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "/relative/path",
        "http:///no-host",
        "",
    ],
)
async def test_non_http_urls_are_permanent(url: str) -> None:
    with pytest.raises(PermanentError):
        await deliver(job({"url": url, "body": {}}), settings())


async def test_private_addresses_are_refused_by_default(receiver: Receiver) -> None:
    strict = settings(allow_private_networks=False)
    with pytest.raises(BlockedAddressError, match="not a public address"):
        await deliver(job({"url": receiver.url("/x"), "body": {}}), strict)
    # A name that resolves to loopback is caught by the resolver, at connect time.
    by_name = f"http://localhost:{receiver.port}/x"
    with pytest.raises(BlockedAddressError, match="non-public"):
        await deliver(job({"url": by_name, "body": {}}), strict)
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("just a string", "object"),
        ({"url": "https://h.example/x"}, "body"),
        ({"url": "https://h.example/x", "body": {}, "headers": {"Idempotency-Key": "x"}}, "set by"),
        ({"url": "https://h.example/x", "body": {}, "headers": {"X": "a\r\nB: c"}}, "one-line"),
        ({"url": "https://h.example/x", "body": {}, "content_type": "text/plain"}, "string body"),
        ({"url": "https://h.example/x", "body": "x", "content_type": "a\rB: c"}, "one-line"),
    ],
)
def test_bad_payloads_are_permanent(payload: JsonValue, match: str) -> None:
    with pytest.raises(PermanentError, match=match):
        parse_payload(payload)


# ---------------------------------------------------------------- signing helpers
def test_verify_accepts_own_signature_and_refuses_tampering() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, body, now=1_700_000_100)
    assert not verify(SECRET, header, body + b" ", now=1_700_000_100)
    assert not verify("x" * 40, header, body, now=1_700_000_100)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)  # replay window
    assert not verify(SECRET, "garbage", body, now=1_700_000_000)
    # Rotation: any one matching v1 entry is enough.
    rotated = header + ",v1=" + "0" * 64
    assert verify(SECRET, rotated, body, now=1_700_000_000)


def test_retry_after_parses_http_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after_s("Tue, 14 Nov 2023 22:15:20 GMT", now=now, cap_s=3600) == 120.0
    assert retry_after_s("soon", now=now, cap_s=3600) is None
    assert retry_after_s(None, now=now, cap_s=3600) is None


def test_short_secret_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", "short")
    with pytest.raises(ConfigError, match=r"WEBHOOK_SIGNING_SECRET: .*32 characters"):
        register(Registry(), only=["webhook"])
    monkeypatch.delenv("WEBHOOK_SIGNING_SECRET")
    with pytest.raises(ConfigError, match="WEBHOOK_SIGNING_SECRET: Field required"):
        register(Registry(), only=["webhook"])


# ---------------------------------------------------------------- through the runtime
async def test_registered_from_env_retries_until_the_receiver_recovers(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
    registry = Registry()
    register(registry, only=["webhook"])
    receiver.respond("/recovering", (503, {}, 0.0), (500, {}, 0.0), (200, {}, 0.0))

    producer = EagerProducer(registry, default_queue="hooks", seed=1)
    job_id = await producer.enqueue("webhook", {"url": receiver.url("/recovering"), "body": {}})

    record = producer.records[job_id]
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.attempt == 3
    hits = receiver.hits("/recovering")
    assert [h.headers["X-Jobqueue-Attempt"] for h in hits] == ["1", "2", "3"]
    assert {h.headers["Idempotency-Key"] for h in hits} == {job_id}
    assert all(h.signature_ok for h in hits)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public(address)
