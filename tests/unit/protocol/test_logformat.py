"""Log lines of both programs: fields, kopf's object reference, context, and no secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from jobqueue_protocol import logformat

SECRET = "hunter2"


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError(f"could not connect to redis://app:{SECRET}@redis:6379/0")
        except RuntimeError:
            info = sys.exc_info()
    return logging.getLogger("t").makeRecord(
        "t", logging.WARNING, __file__, 1, msg, args, info, extra=extra
    )


def _json(record: logging.LogRecord) -> dict[str, object]:
    line = logformat.JsonLineFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"rediss://user:{SECRET}@h/1", "rediss://user:***@h/1"),
        (f"at postgres://app:{SECRET}@db:5432/x and amqp://u:{SECRET}@mq/",
         "at postgres://app:***@db:5432/x and amqp://u:***@mq/"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user@h:6379/0", "redis://user@h:6379/0"),
        ("ratio 3:4 at 10:30", "ratio 3:4 at 10:30"),
    ],
)  # fmt: skip
def test_passwords_in_urls_are_masked(text: str, masked: str) -> None:
    assert logformat.redact_text(text) == masked


def test_redact_url() -> None:
    assert (
        logformat.redact_url(f"redis://app:{SECRET}@redis:6379/0") == "redis://app:***@redis:6379/0"
    )
    assert logformat.redact_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_json_line_fields_and_secrets() -> None:
    url = f"redis://:{SECRET}@h:1/0"
    data = _json(
        _record("connect %s", url, exc=True, job_id="j1", job_type="send", queue="q", attempt=2,
                smtp_password=SECRET, api_token=SECRET, note=f"see {url}")
    )  # fmt: skip
    assert list(data)[:4] == ["ts", "level", "logger", "msg"]
    assert (data["level"], data["logger"], data["msg"]) == (
        "WARNING",
        "t",
        "connect redis://:***@h:1/0",
    )
    assert (data["job_id"], data["job_type"], data["queue"], data["attempt"]) == (
        "j1",
        "send",
        "q",
        2,
    )
    assert data["smtp_password"] == data["api_token"] == "***"
    assert data["note"] == "see redis://:***@h:1/0"
    assert "redis://app:***@redis:6379/0" in str(data["exc"])
    assert SECRET not in json.dumps(data)


def test_text_line_fields_and_secrets() -> None:
    line = logformat.TextLineFormatter().format(
        _record("connect %s", f"redis://:{SECRET}@h:1/0", exc=True, job_id="j1", password=SECRET)
    )
    assert " WARNING t: connect redis://:***@h:1/0 [job_id=j1 password=***]" in line
    assert "RuntimeError: could not connect to redis://app:***@redis:6379/0" in line
    assert SECRET not in line


def test_kopf_object_reference_becomes_jobqueue_fields() -> None:
    """kopf's per-object logger passes ``k8s_ref`` (and its settings object, never printed)."""
    ref = {"apiVersion": "jobqueue.dev/v1", "kind": "JobQueue", "name": "mail", "namespace": "ns",
           "uid": "u"}  # fmt: skip
    data = _json(_record("Handler succeeded", k8s_ref=ref, k8s_skip=False, settings=object()))
    assert (data["jobqueue"], data["namespace"]) == ("mail", "ns")
    assert not {"k8s_ref", "k8s_skip", "settings"} & set(data)
    other = _json(_record("x", k8s_ref={**ref, "kind": "Deployment", "name": "w"}))
    assert (other["object"], other["namespace"]) == ("Deployment/w", "ns")
    assert "jobqueue" not in other


def test_bound_fields_stay_with_their_task() -> None:
    """Two JobQueue loops in one event loop: each line names its own JobQueue."""
    seen: dict[str, object] = {}

    async def loop(name: str) -> None:
        with logformat.bound(jobqueue=name, namespace="ns"):
            await asyncio.sleep(0.01)
            seen[name] = _json(_record("tick"))["jobqueue"]

    async def both() -> None:
        await asyncio.gather(loop("a"), loop("b"))

    asyncio.run(both())
    assert seen == {"a": "a", "b": "b"}
    assert "jobqueue" not in _json(_record("outside"))


def test_setup_installs_one_handler_with_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logformat.setup("json", "debug")
        logformat.setup("json", "debug")
        assert len(root.handlers) == 1
        assert root.level == logging.DEBUG
        assert isinstance(root.handlers[0].formatter, logformat.JsonLineFormatter)
        logformat.setup("text")
        assert isinstance(root.handlers[0].formatter, logformat.TextLineFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
