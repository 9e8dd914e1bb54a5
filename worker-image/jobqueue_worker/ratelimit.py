"""Rate-limit maths, pure: parsing, and the three algorithms with the clock passed in.

``scripts/ratelimit_lib.lua`` mirrors these functions line for line (the Lua is
what runs, atomically, in the fetch script and the handler-side limiter); the
Python here is the executable specification the tests check with tables and
hypothesis. Times are milliseconds (Redis ``TIME`` in the scripts).

- ``sliding``: an exact sliding window over a log of admission times (ZSET).
  A request at ``now`` is admitted when fewer than ``limit`` admissions lie in
  ``(now - period, now]``; otherwise it may retry when the oldest one leaves.
- ``bucket``: a token bucket as GCRA, one stored number (the theoretical arrival
  time, TAT). ``burst`` requests may pass at once, then one per
  ``period / limit``.
- ``fixed``: a fixed window counter (``INCR`` + ``PEXPIRE``), the window starting
  at its first admission (BullMQ's limiter). Cheapest; up to 2 × limit can pass
  around a window edge.

Text form (``RATE_LIMIT_<TYPE>``): comma-separated ``N/PERIOD[:ALGO[:BURST]]``,
PERIOD one of second, minute, hour, day (or s, m, h, d, optionally prefixed by a
count: ``10/30s``), ALGO one of sliding (default), bucket, fixed; BURST only for
bucket (default N). Example: ``300/minute,10000/hour,100000/day``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["sliding", "bucket", "fixed"]
KINDS: tuple[Kind, ...] = ("sliding", "bucket", "fixed")

_PERIODS_MS = {
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
}
_ALIASES = {
    "s": "second",
    "sec": "second",
    "seconds": "second",
    "m": "minute",
    "min": "minute",
    "minutes": "minute",
    "h": "hour",
    "hours": "hour",
    "d": "day",
    "days": "day",
}
_ITEM = re.compile(r"^(\d+)\s*/\s*(\d*)\s*([a-z]+)(?::([a-z]+))?(?::(\d+))?$")
EXPECTED = (
    "comma-separated N/PERIOD[:ALGO[:BURST]] with N ≥ 1, PERIOD second|minute|hour|day"
    " (optionally with a count, e.g. 30s), ALGO sliding|bucket|fixed, e.g."
    " '300/minute,10000/hour'"
)


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period_ms: int
    kind: Kind = "sliding"
    burst: int = 0  # bucket only; 0 means ``limit``

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be ≥ 1: {self.limit}")
        if self.period_ms < 1:
            raise ValueError(f"period must be ≥ 1 ms: {self.period_ms}")
        if self.kind not in KINDS:
            raise ValueError(f"algorithm must be one of {', '.join(KINDS)}: {self.kind!r}")
        if self.burst < 0 or (self.burst and self.kind != "bucket"):
            raise ValueError("a burst is only for the bucket algorithm, and ≥ 1")

    @property
    def capacity(self) -> int:
        return (self.burst or self.limit) if self.kind == "bucket" else self.limit

    @property
    def emission_ms(self) -> float:
        """GCRA: the time one request costs (period / limit)."""
        return self.period_ms / self.limit

    @property
    def label(self) -> str:
        """Bounded label text for metrics and key names, e.g. ``300/60000ms:sliding``."""
        tail = f":{self.burst}" if self.burst else ""
        return f"{self.limit}/{self.period_ms}ms:{self.kind}{tail}"


def parse_limits(text: str) -> tuple[RateLimit, ...]:
    """``"300/minute,10000/hour"`` → limits; ``ValueError`` says what is expected."""
    items = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not items:
        raise ValueError(f"empty; expected {EXPECTED}")
    out: list[RateLimit] = []
    for item in items:
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"{item!r} is not a limit; expected {EXPECTED}")
        n, count, unit, kind, burst = m.groups()
        unit = _ALIASES.get(unit, unit)
        if unit not in _PERIODS_MS:
            raise ValueError(f"{item!r}: unknown period {unit!r}; expected {EXPECTED}")
        mult = int(count) if count else 1
        if mult < 1:
            raise ValueError(f"{item!r}: the period count must be ≥ 1")
        kind = kind or "sliding"
        if kind not in KINDS:
            raise ValueError(f"{item!r}: unknown algorithm {kind!r}; expected {EXPECTED}")
        if burst is not None and kind != "bucket":
            raise ValueError(f"{item!r}: a burst is only for the bucket algorithm")
        if int(n) < 1:
            raise ValueError(f"{item!r}: the limit must be ≥ 1")
        if burst is not None and int(burst) < 1:
            raise ValueError(f"{item!r}: the burst must be ≥ 1")
        out.append(
            RateLimit(
                limit=int(n),
                period_ms=_PERIODS_MS[unit] * mult,
                kind=kind,
                burst=int(burst or 0),
            )
        )
    if len({lim.label for lim in out}) != len(out):
        raise ValueError(f"{text!r}: the same limit is listed twice")
    return tuple(out)


# -- the algorithms (state in, decision and new state out) ----------------------
@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_ms: int  # 0 when allowed


def sliding_check(log: Sequence[int], now: int, lim: RateLimit) -> Decision:
    """``log``: admission times still stored (any order)."""
    live = sorted(t for t in log if t > now - lim.period_ms)
    if len(live) < lim.limit:
        return Decision(True, 0)
    # The (len - limit + 1)-th oldest must leave the window before one more fits.
    oldest = live[len(live) - lim.limit]
    return Decision(False, max(1, oldest + lim.period_ms - now))


def sliding_admit(log: Sequence[int], now: int, lim: RateLimit) -> list[int]:
    return [t for t in log if t > now - lim.period_ms] + [now]


def gcra_check(tat: float | None, now: int, lim: RateLimit) -> Decision:
    t = lim.emission_ms
    base = max(tat if tat is not None else now, now)
    allow_at = base - (lim.capacity - 1) * t
    if allow_at > now:
        return Decision(False, max(1, math.ceil(allow_at - now)))
    return Decision(True, 0)


def gcra_admit(tat: float | None, now: int, lim: RateLimit) -> float:
    return max(tat if tat is not None else now, now) + lim.emission_ms


def fixed_check(count: int, ttl_ms: int, now: int, lim: RateLimit) -> Decision:
    """``count`` in the current window, ``ttl_ms`` until it ends (≤ 0: no window)."""
    del now
    if ttl_ms > 0 and count >= lim.limit:
        return Decision(False, ttl_ms)
    return Decision(True, 0)


def combine(decisions: Sequence[Decision]) -> Decision:
    """Several limits on one type: admitted only if every one admits; wait for the slowest."""
    denied = [d.retry_ms for d in decisions if not d.allowed]
    return Decision(False, max(denied)) if denied else Decision(True, 0)


@dataclass
class Simulated:
    """One limiter's state in memory: the model the Lua is tested against."""

    lim: RateLimit
    log: list[int]
    tat: float | None = None
    count: int = 0
    window_end: int = 0

    @classmethod
    def new(cls, lim: RateLimit) -> Simulated:
        return cls(lim=lim, log=[])

    def check(self, now: int) -> Decision:
        if self.lim.kind == "sliding":
            return sliding_check(self.log, now, self.lim)
        if self.lim.kind == "bucket":
            return gcra_check(self.tat, now, self.lim)
        ttl = self.window_end - now
        return fixed_check(self.count if ttl > 0 else 0, ttl, now, self.lim)

    def admit(self, now: int) -> None:
        if self.lim.kind == "sliding":
            self.log = sliding_admit(self.log, now, self.lim)
        elif self.lim.kind == "bucket":
            self.tat = gcra_admit(self.tat, now, self.lim)
        else:
            if self.window_end - now <= 0:
                self.count, self.window_end = 0, now + self.lim.period_ms
            self.count += 1


def try_acquire(limiters: Sequence[Simulated], now: int) -> Decision:
    d = combine([s.check(now) for s in limiters])
    if d.allowed:
        for s in limiters:
            s.admit(now)
    return d
