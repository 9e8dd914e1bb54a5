"""PURE retry maths: how long to wait before attempt n+1, and what a failure means.

No clock, no I/O, no global RNG: callers pass ``random.Random`` so tests are
exact and a seeded run is reproducible (dramatiq's module RNG is the anti-pattern).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field

from jobqueue_worker.errors import PermanentError, Retry


class Jitter(enum.StrEnum):
    NONE = "none"
    FULL = "full"  # uniform in [0, d]: spreads a thundering herd best (AWS analysis)
    EQUAL = "equal"  # d/2 + uniform in [0, d/2]: keeps at least half the delay


@dataclass(frozen=True)
class BackoffPolicy:
    """``retries`` counts the runs after the first, so a job runs ``retries + 1`` times."""

    retries: int = 8
    kind: str = "exponential"  # "exponential" | "fixed"
    base_s: float = 2.0
    factor: float = 2.0
    cap_s: float = 300.0
    jitter: Jitter = Jitter.NONE

    def __post_init__(self) -> None:
        if self.kind not in ("exponential", "fixed"):
            raise ValueError(f"backoff kind must be exponential or fixed: {self.kind!r}")
        if self.retries < 0 or self.base_s < 0 or self.factor < 1 or self.cap_s < 0:
            raise ValueError("backoff needs retries >= 0, base_s >= 0, factor >= 1, cap_s >= 0")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


# Ready-made policies for common kinds of work. ORDERS retries three times, after
# 2, 4 and 8 s; EMAIL rides out a few minutes of a mail server being down; PAYMENTS
# waits a fixed 5 s so a payment provider's idempotency window is not outrun.
ORDERS = BackoffPolicy(retries=3, base_s=2.0, factor=2.0, cap_s=8.0)
EMAIL = BackoffPolicy(retries=5, base_s=1.0, factor=2.0, cap_s=16.0)
PAYMENTS = BackoffPolicy(retries=3, kind="fixed", base_s=5.0, cap_s=5.0)
DEFAULT = BackoffPolicy(retries=8, base_s=2.0, factor=2.0, cap_s=300.0)
NO_RETRY = BackoffPolicy(retries=0)


def retry_delay(retry: int, policy: BackoffPolicy, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
    if retry < 1:
        raise ValueError("retry numbers start at 1")
    if policy.kind == "fixed" or policy.base_s <= 0 or policy.cap_s <= 0:
        d = min(policy.base_s, policy.cap_s)
    elif (retry - 1) * math.log(policy.factor) >= math.log(policy.cap_s) - math.log(policy.base_s):
        d = policy.cap_s  # decided in log space, so huge retry numbers cannot overflow
    else:
        try:
            d = min(policy.cap_s, policy.base_s * policy.factor ** (retry - 1))
        except OverflowError:  # a sub-normal base: the product is below the cap
            log_d = math.log(policy.base_s) + (retry - 1) * math.log(policy.factor)
            d = min(policy.cap_s, math.exp(log_d))
    if policy.jitter is Jitter.FULL:
        return rng.uniform(0.0, d)
    if policy.jitter is Jitter.EQUAL:
        return d / 2 + rng.uniform(0.0, d / 2)
    return d


@dataclass(frozen=True)
class RetryLater:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    permanent: bool  # True: retries were skipped on purpose


Outcome = RetryLater | GiveUp


@dataclass(frozen=True)
class FailurePolicy:
    """A job type's answer to failure: its backoff and the exceptions not worth retrying."""

    backoff: BackoffPolicy = DEFAULT
    permanent: tuple[type[BaseException], ...] = field(default=())


def next_outcome(
    exc: BaseException,
    attempt: int,
    max_attempts: int,
    policy: FailurePolicy,
    rng: random.Random,
) -> Outcome:
    """Map a failed attempt (1-based ``attempt``) to retry-later or give-up."""
    if isinstance(exc, (PermanentError, *policy.permanent)):
        return GiveUp(permanent=True)
    if attempt >= max_attempts:
        return GiveUp(permanent=False)
    if isinstance(exc, Retry) and exc.delay_s is not None:
        return RetryLater(max(0.0, exc.delay_s))
    return RetryLater(retry_delay(attempt, policy.backoff, rng))
