"""Envelope, producer-side validation, settings and eager mode (no Redis)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_worker.backoff import BackoffPolicy
from jobqueue_worker.eager import EagerProducer
from jobqueue_worker.envelope import (
    JobEnvelope,
    JobStatus,
    Priority,
    describe,
    parse_priority,
    payload_size,
)
from jobqueue_worker.errors import ConfigError, EnqueueError, PermanentError
from jobqueue_worker.producer import JobRequest, build
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.settings import load


def test_priorities() -> None:
    assert [int(p) for p in Priority] == [1, 3, 5, 7, 10]
    assert parse_priority("high") == 3
    assert parse_priority("BACKGROUND") == 10
    assert parse_priority(2) == 2
    assert parse_priority("4") == 4
    for bad in (0, 11, -1, "urgent", "12"):
        with pytest.raises(ValueError):  # noqa: PT011 - both error types are ValueErrors
            parse_priority(bad)


def test_envelope_round_trip_and_rejections() -> None:
    env = JobEnvelope(type="t", queue="q", payload={"a": [1, 2]}, priority=7)
    assert JobEnvelope.from_json(env.to_json()) == env
    with pytest.raises(ValueError):  # noqa: PT011
        JobEnvelope(type="t", queue="q", priority=11)
    with pytest.raises(ValueError):  # noqa: PT011
        JobEnvelope.from_json("{not json")
    with pytest.raises(ValueError):  # noqa: PT011
        JobEnvelope.from_json(json.dumps({"type": "t", "queue": "q", "pickle": "x"}))
    with pytest.raises(ValueError):  # noqa: PT011
        JobEnvelope.from_json(json.dumps({"type": "t", "queue": "a{b}"}))


@pytest.mark.parametrize(
    ("payload", "size"),
    [(None, 4), ({"a": "é"}, 10), ([1, 2.5, "x"], 11), ("ü" * 10, 22), ({"k": [True]}, 12)],
)
def test_a_payload_is_measured_as_stored_compact_utf8_json(payload: object, size: int) -> None:
    assert payload_size(JobEnvelope(type="t", queue="q", payload=payload)) == size  # type: ignore[arg-type]


def test_build_validates_before_redis() -> None:
    job = build(JobRequest(type="t", payload=[1], priority="low", delay_s=1.5), "q", 100)
    assert job.priority == 7
    assert job.delay_ms == 1500
    assert job.max_attempts == 0  # the job type decides
    with pytest.raises(EnqueueError, match="over the 10-byte"):
        build(JobRequest(type="t", payload="x" * 20), "q", 10)
    with pytest.raises(EnqueueError, match="not both"):
        build(JobRequest(type="t", delay_s=1, run_at=datetime.now(UTC)), "q", 100)
    with pytest.raises(EnqueueError, match="timezone"):
        build(JobRequest(type="t", run_at=datetime(2030, 1, 1)), "q", 100)
    with pytest.raises(EnqueueError):
        build(JobRequest(type="t", priority=0), "q", 100)


def test_invalid_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JQW_CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="JQW_CONCURRENCY"):
        load()
    monkeypatch.setenv("JQW_CONCURRENCY", "4")
    monkeypatch.setenv("JQW_QUEUES", "a,a")
    with pytest.raises(ConfigError, match="JQW_QUEUES"):
        load()
    monkeypatch.setenv("JQW_QUEUES", "high, normal ,low")
    monkeypatch.setenv("JQW_MODE", "weighted")
    monkeypatch.setenv("JQW_WEIGHTS", "3,2")
    with pytest.raises(ConfigError, match="weights"):
        load()
    monkeypatch.setenv("JQW_WEIGHTS", "3,2,1")
    monkeypatch.setenv("JQW_TERMINATION_GRACE_PERIOD_S", "30")
    with pytest.raises(ConfigError, match="grace_period_s"):
        load()
    monkeypatch.setenv("JQW_GRACE_PERIOD_S", "25")
    s = load()
    assert s.queues == ["high", "normal", "low"]
    assert s.weights == [3.0, 2.0, 1.0]


async def test_eager_mode_runs_inline_with_retries() -> None:
    reg = Registry()
    calls: list[int] = []

    @reg.job_type("flaky", backoff=BackoffPolicy(retries=2, base_s=100))
    def flaky(job: Job) -> str:
        calls.append(job.attempt)
        if job.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    @reg.job_type("never")
    async def never(job: Job) -> None:
        raise PermanentError("no")

    eager = EagerProducer(reg, seed=1)
    job_id = await eager.enqueue("flaky")
    rec = await eager.status(job_id)
    assert rec is not None
    assert rec.status is JobStatus.COMPLETED
    assert await eager.result(job_id) == "ok"
    assert calls == [1, 2, 3]
    dead = await eager.status(await eager.enqueue("never"))
    assert dead is not None
    assert dead.status is JobStatus.DEAD
    assert dead.dead_reason == "permanent"
    unknown = await eager.status(await eager.enqueue("nope"))
    assert unknown is not None
    assert unknown.dead_reason == "unknown_type"
    assert await eager.enqueue("flaky", idempotency_key="k") == await eager.enqueue(
        "flaky", idempotency_key="k"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"queue": "a b"}, "queue: queue name must not contain braces or whitespace"),
        ({"queue": "a{b}"}, "queue: queue name must not contain braces or whitespace"),
        ({"queue": "x" * 201}, "queue: String should have at most 200 characters"),
        ({"id": "x y"}, "id: job id must not contain braces, spaces or newlines"),
        ({"id": "x\n"}, "id: job id must not contain braces, spaces or newlines"),
        ({"priority": 0}, "priority: priority must be between 1 and 10"),
        ({"priority": 11}, "priority: priority must be between 1 and 10"),
        ({"priority": True}, "priority: Input should be a valid integer"),
    ],
)
def test_a_bad_field_is_named_in_words_on_both_sides(
    fields: dict[str, object], message: str
) -> None:
    """The producer's error and the dead-letter reason say the same, without the input."""
    with pytest.raises(ValueError) as built:  # noqa: PT011 - pydantic's ValidationError
        JobEnvelope(**{"type": "t", "queue": "q", **fields})  # type: ignore[arg-type]
    assert describe(built.value) == message
    with pytest.raises(ValueError) as decoded:  # noqa: PT011
        JobEnvelope.from_json(json.dumps({"type": "t", "queue": "q", **fields}))
    assert describe(decoded.value) == message


# Braces and the forbidden whitespace, beside whitespace that is allowed (\x0b, \x0c,
# NBSP, U+2028): a rule written as \s would reject those.
_NEAR_MISSES = "ab{}\t\n\r \x0b\x0c\u00a0\u2028"


@given(st.one_of(st.text(min_size=1, max_size=200), st.text(_NEAR_MISSES, min_size=1)))
def test_the_envelope_accepts_exactly_the_queue_names_the_key_layout_does(name: str) -> None:
    from jobqueue_protocol import keys

    try:
        keys.validate_queue(name)
        layout_ok = True
    except ValueError:
        layout_ok = False
    try:
        JobEnvelope(type="t", queue=name)
        envelope_ok = True
    except ValueError:
        envelope_ok = False
    assert envelope_ok == layout_ok


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_decoding_any_text_only_ever_raises_value_error(raw: str) -> None:
    message = "decoded"
    try:
        JobEnvelope.from_json(raw)
    except ValueError as exc:
        message = describe(exc)
    assert message


@given(
    st.dictionaries(
        st.sampled_from(["id", "type", "queue", "payload", "priority", "attempt", "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers())),
    )
)
def test_decoding_any_json_object_validates_or_raises_value_error(data: dict[str, object]) -> None:
    try:
        env = JobEnvelope.from_json(json.dumps(data))
    except ValueError:
        return
    assert 1 <= env.priority <= 10


def test_json_logs_carry_job_context_and_the_stack_trace() -> None:
    import logging

    from jobqueue_protocol.logformat import JsonLineFormatter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "Job failed",
            (),
            sys.exc_info(),
            extra={"job_id": "j1", "job_type": "send", "queue": "q", "attempt": 2},
        )
    data = json.loads(JsonLineFormatter().format(record))
    assert data["msg"] == "Job failed"
    assert (data["job_id"], data["job_type"], data["queue"], data["attempt"]) == (
        "j1",
        "send",
        "q",
        2,
    )
    assert "RuntimeError: boom" in data["exc"]
