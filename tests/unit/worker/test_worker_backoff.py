"""Retry maths: the seeds' presets exactly, and properties for any policy (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_worker import backoff
from jobqueue_worker.backoff import (
    BackoffPolicy,
    FailurePolicy,
    GiveUp,
    Jitter,
    RetryLater,
    next_outcome,
    retry_delay,
)
from jobqueue_worker.errors import PermanentError, Retry


def delays(policy: BackoffPolicy) -> list[float]:
    rng = random.Random(0)
    return [retry_delay(n, policy, rng) for n in range(1, policy.retries + 1)]


def test_seed_presets() -> None:
    assert delays(backoff.ORDERS) == [2, 4, 8]
    assert delays(backoff.EMAIL) == [1, 2, 4, 8, 16]
    assert delays(backoff.PAYMENTS) == [5, 5, 5]
    assert delays(backoff.DEFAULT) == [2, 4, 8, 16, 32, 64, 128, 256]
    assert retry_delay(12, backoff.DEFAULT, random.Random(0)) == 300
    assert backoff.ORDERS.max_attempts == 4


def test_outcomes_follow_attempts_and_permanent_errors() -> None:
    rng = random.Random(1)
    pol = FailurePolicy(backoff=backoff.ORDERS, permanent=(KeyError,))
    assert next_outcome(RuntimeError(), 1, 4, pol, rng) == RetryLater(2.0)
    assert next_outcome(RuntimeError(), 3, 4, pol, rng) == RetryLater(8.0)
    assert next_outcome(RuntimeError(), 4, 4, pol, rng) == GiveUp(permanent=False)
    assert next_outcome(KeyError(), 1, 4, pol, rng) == GiveUp(permanent=True)
    assert next_outcome(PermanentError(), 1, 4, pol, rng) == GiveUp(permanent=True)
    assert next_outcome(Retry(delay_s=0.5), 1, 4, pol, rng) == RetryLater(0.5)
    assert next_outcome(Retry(delay_s=0.5), 4, 4, pol, rng) == GiveUp(permanent=False)


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        BackoffPolicy(kind="linear")
    with pytest.raises(ValueError, match="factor"):
        BackoffPolicy(factor=0.5)
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(0, backoff.DEFAULT, random.Random(0))


policies = st.builds(
    BackoffPolicy,
    retries=st.integers(0, 50),
    kind=st.sampled_from(["exponential", "fixed"]),
    base_s=st.floats(0, 1000, allow_nan=False),
    factor=st.floats(1, 10, allow_nan=False),
    cap_s=st.floats(0, 100_000, allow_nan=False),
    jitter=st.sampled_from(list(Jitter)),
)


@given(policies, st.integers(1, 5000), st.integers(0, 2**32))
def test_delay_is_never_negative_nor_above_the_cap(p: BackoffPolicy, n: int, seed: int) -> None:
    d = retry_delay(n, p, random.Random(seed))
    assert 0 <= d <= max(p.cap_s, 0)


@given(policies, st.integers(1, 200))
def test_without_jitter_delays_never_shrink(p: BackoffPolicy, n: int) -> None:
    p = BackoffPolicy(p.retries, p.kind, p.base_s, p.factor, p.cap_s, Jitter.NONE)
    rng = random.Random(0)
    assert retry_delay(n, p, rng) <= retry_delay(n + 1, p, rng)


@given(policies, st.integers(1, 200), st.integers(0, 2**32))
def test_same_seed_same_delay(p: BackoffPolicy, n: int, seed: int) -> None:
    assert retry_delay(n, p, random.Random(seed)) == retry_delay(n, p, random.Random(seed))


@given(policies, st.integers(1, 200), st.integers(0, 2**32))
def test_equal_jitter_keeps_at_least_half(p: BackoffPolicy, n: int, seed: int) -> None:
    plain = BackoffPolicy(p.retries, p.kind, p.base_s, p.factor, p.cap_s, Jitter.NONE)
    eq = BackoffPolicy(p.retries, p.kind, p.base_s, p.factor, p.cap_s, Jitter.EQUAL)
    full = BackoffPolicy(p.retries, p.kind, p.base_s, p.factor, p.cap_s, Jitter.FULL)
    d = retry_delay(n, plain, random.Random(0))
    assert d / 2 <= retry_delay(n, eq, random.Random(seed)) <= d + 1e-9
    assert 0 <= retry_delay(n, full, random.Random(seed)) <= d + 1e-9


@given(st.integers(1, 100), st.integers(1, 100), st.integers(0, 2**32))
def test_give_up_exactly_at_max_attempts(attempt: int, max_attempts: int, seed: int) -> None:
    out = next_outcome(RuntimeError(), attempt, max_attempts, FailurePolicy(), random.Random(seed))
    assert isinstance(out, GiveUp) == (attempt >= max_attempts)
