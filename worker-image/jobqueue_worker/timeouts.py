"""Timeout maths, pure: soft/hard per type, adaptive timeouts, execution statistics.

Adaptive timeouts come from each worker's OWN recent history (the last
``window`` durations per job type, kept in memory): no Redis traffic per job
(the step call stays one round trip), a recent window follows a type whose speed
changes, and a crash loses nothing worth keeping. A fresh worker uses the
configured timeout until it has ``min_samples``. The summaries are published with
the heartbeat for ``jobqueue stats`` and /metrics.

adaptive hard timeout = clamp(P95 × factor, min_s, max_s), and never above the
configured hard timeout of the type when there is one (the configured ceiling
always wins); soft = ``soft_ratio`` × hard.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (p in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class ExecStats:
    count: int
    min: float
    max: float
    mean: float
    p50: float
    p95: float
    p99: float

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
        }


def summarize(durations: Sequence[float]) -> ExecStats | None:
    if not durations:
        return None
    s = sorted(durations)
    return ExecStats(
        count=len(s),
        min=s[0],
        max=s[-1],
        mean=sum(s) / len(s),
        p50=percentile(s, 50),
        p95=percentile(s, 95),
        p99=percentile(s, 99),
    )


@dataclass(frozen=True)
class AdaptiveConfig:
    factor: float = 3.0
    min_s: float = 1.0
    max_s: float = 3600.0
    min_samples: int = 20


def adaptive_timeout(
    durations: Sequence[float], cfg: AdaptiveConfig, ceiling_s: float | None
) -> float | None:
    """The hard timeout from history, or None while there are too few samples."""
    if len(durations) < cfg.min_samples:
        return None
    p95 = percentile(sorted(durations), 95)
    t = min(max(p95 * cfg.factor, cfg.min_s), cfg.max_s)
    return min(t, ceiling_s) if ceiling_s is not None else t


@dataclass(frozen=True)
class Timeouts:
    hard_s: float | None
    soft_s: float | None


def timeout_retry_delay(backoff_delay_s: float, multiplier: float) -> float:
    """A timed-out attempt waits longer before its retry than a plain failure."""
    return backoff_delay_s * multiplier


class History:
    """Recent durations per job type (bounded), local to one worker."""

    def __init__(self, window: int = 500) -> None:
        self.window = window
        self._by_type: dict[str, deque[float]] = {}

    def add(self, job_type: str, seconds: float) -> None:
        self._by_type.setdefault(job_type, deque(maxlen=self.window)).append(seconds)

    def durations(self, job_type: str) -> list[float]:
        return list(self._by_type.get(job_type, ()))

    def types(self) -> list[str]:
        return sorted(self._by_type)

    def summary(self) -> dict[str, ExecStats]:
        out = {}
        for t in self.types():
            s = summarize(self.durations(t))
            if s is not None:
                out[t] = s
        return out
