"""One attempt's decisions (pure): can the job run at all, and what follows a failure.

Every dead-letter reason the Python side gives comes from these two functions,
for the worker and for eager mode alike.
"""

from __future__ import annotations

import json
import random

import pytest

from jobqueue_worker.attempt import Rejected, job_for, judge_failure, open_envelope
from jobqueue_worker.backoff import BackoffPolicy
from jobqueue_worker.envelope import DeadReason, JobEnvelope
from jobqueue_worker.errors import JobTimeout, MemoryLimitExceeded, PermanentError
from jobqueue_worker.registry import Job, JobType, Registry

ENVELOPE = {"id": "j1", "type": "known", "queue": "q", "payload": {"n": 1}}


def _registry(*, dead_letter: bool = True, retries: int = 2) -> Registry:
    reg = Registry()
    reg.register(
        "known",
        lambda job: None,
        backoff=BackoffPolicy(retries=retries, base_s=1.0, factor=2.0, cap_s=8.0),
        permanent=(KeyError,),
        dead_letter=dead_letter,
    )
    return reg


@pytest.mark.parametrize(
    ("raw", "max_bytes", "reason"),
    [
        (json.dumps(ENVELOPE), 10, DeadReason.TOO_LARGE),
        ("{not json", 10_000, DeadReason.MALFORMED),
        (json.dumps({**ENVELOPE, "priority": 99}), 10_000, DeadReason.MALFORMED),
        (json.dumps({**ENVELOPE, "type": "nobody"}), 10_000, DeadReason.UNKNOWN_TYPE),
    ],
)
def test_a_job_that_can_never_run_is_rejected_with_its_reason(
    raw: str, max_bytes: int, reason: DeadReason
) -> None:
    got = open_envelope(raw, max_bytes, _registry())
    assert isinstance(got, Rejected)
    assert got.reason == reason
    assert got.error


def test_a_good_envelope_opens_with_its_job_type() -> None:
    got = open_envelope(json.dumps(ENVELOPE), 10_000, _registry())
    assert not isinstance(got, Rejected)
    env, jt = got
    assert (env.id, jt.name) == ("j1", "known")


def _job(attempt: int, reg: Registry) -> tuple[Job, JobType]:
    env = JobEnvelope.from_json(json.dumps(ENVELOPE))
    jt = reg.get("known")
    assert jt is not None
    return job_for(env, jt, id="j1", queue="q", attempt=attempt, deliveries=1), jt


@pytest.mark.parametrize(
    ("exc", "attempt", "op", "reason"),
    [
        (RuntimeError("x"), 1, "retry", None),
        (RuntimeError("x"), 3, "dead", DeadReason.EXCEPTION),
        (JobTimeout(1.0, "cancelled"), 3, "dead", DeadReason.TIMEOUT),
        (MemoryLimitExceeded("big"), 3, "dead", DeadReason.MEMORY_LIMIT),
        (PermanentError("no"), 1, "dead", DeadReason.PERMANENT),
        (KeyError("declared permanent"), 1, "dead", DeadReason.PERMANENT),
    ],
)
def test_what_follows_a_failure(
    exc: Exception, attempt: int, op: str, reason: DeadReason | None
) -> None:
    reg = _registry()
    job, jt = _job(attempt, reg)
    verdict = judge_failure(exc, job, jt, random.Random(0))
    assert (verdict.op, verdict.reason) == (op, reason)


def test_a_type_without_a_dead_letter_queue_fails_for_good() -> None:
    reg = _registry(dead_letter=False)
    job, jt = _job(3, reg)
    verdict = judge_failure(RuntimeError("x"), job, jt, random.Random(0))
    assert (verdict.op, verdict.reason) == ("failed", None)


def test_a_timed_out_attempt_waits_longer_before_its_retry() -> None:
    reg = _registry()
    job, jt = _job(1, reg)
    plain = judge_failure(RuntimeError("x"), job, jt, random.Random(0))
    slow = judge_failure(
        JobTimeout(1.0, "cancelled"),
        job,
        jt,
        random.Random(0),
        timeout_backoff_multiplier=3.0,
    )
    assert slow.op == plain.op == "retry"
    assert slow.delay_s == pytest.approx(plain.delay_s * 3.0)


@pytest.mark.parametrize("fails", [False, True])
async def test_an_attempt_records_its_wait_once_after_the_handler(fails: bool) -> None:
    """The wait is read before the handler and recorded after it, on either outcome."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from jobqueue_worker import metrics
    from jobqueue_worker.attempt import Attempts
    from jobqueue_worker.wire import Fetched

    queue = f"wait-{fails}"
    recorded = metrics.WAIT.labels(queue)
    counts: list[float] = []

    def sample(suffix: str) -> float:
        (family,) = recorded.collect()
        return next(s.value for s in family.samples if s.name.endswith(suffix))

    def count() -> float:
        return sample("_count")

    async def handler(job: Job) -> None:
        counts.append(count())  # nothing recorded yet while the handler runs
        if fails:
            raise KeyError("permanent")

    reg = Registry()
    reg.register("known", handler, permanent=(KeyError,))
    env = JobEnvelope(
        type="known", queue=queue, enqueued_at=datetime.now(UTC) - timedelta(seconds=2)
    )
    fetched = Fetched(queue, env.id, env.to_json(), 1, 1, "t", "known")

    async def guard(job: Job, jt: JobType, call: object) -> object:
        return await call()  # type: ignore[operator]

    before, before_sum = count(), sample("_sum")  # the registry is the process's
    with ThreadPoolExecutor(1) as pool:
        attempts = Attempts(
            guard=guard,
            executor=pool,
            rng=random.Random(1),
            max_payload_bytes=10_000,
            timeout_backoff_multiplier=2.0,
            log_payloads=False,
        )
        ran = await attempts.run(fetched, env, reg.get("known"))  # type: ignore[arg-type]
    assert ran.op.op == ("dead" if fails else "complete")
    assert counts == [before]
    assert count() == before + 1
    assert 2.0 <= sample("_sum") - before_sum < 60.0
