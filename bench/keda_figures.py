"""compare-keda's figures from step functions and job records: pure, no I/O.

A timeline is a step function, ``(seconds since the trace began, value)`` by time.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jobqueue_simulator.report import percentile

Series = Sequence[tuple[float, int]]  # (seconds since the trace began, value), by time


def value_at(series: Series, t: float) -> int:
    """The step function's value at ``t`` (its first value before the first point)."""
    current = series[0][1] if series else 0
    for at, value in series:
        if at > t:
            break
        current = value
    return current


def integrate(series: Series, end_s: float) -> float:
    """Seconds × value of the step function over [first point, end_s]."""
    total = 0.0
    for (t, value), (next_t, _) in zip(series, [*series[1:], (end_s, 0)], strict=False):
        total += value * max(0.0, min(next_t, end_s) - t)
    return total


def changes(series: Series) -> list[tuple[float, int, int]]:
    """(time, from, to) at every change of value."""
    out = []
    for (_, before), (t, after) in itertools.pairwise(series):
        if after != before:
            out.append((t, before, after))
    return out


def direction_changes(values: Sequence[int]) -> int:
    """How often the value turns from going up to going down or back."""
    direction, flips = 0, 0
    for before, after in itertools.pairwise(values):
        if after == before:
            continue
        step = 1 if after > before else -1
        flips += direction not in (0, step)
        direction = step
    return flips


def first_time(series: Series, after_s: float, done: Callable[[int], bool]) -> float | None:
    """Seconds from ``after_s`` until the first point at or after it that is ``done``."""
    for t, value in series:
        if t >= after_s and done(value):
            return t - after_s
    return None


def startup_lags(wanted: Series, ready: Series) -> list[float]:
    """For each rise of ``wanted`` to n: seconds until ``ready`` reaches n (rises that
    are withdrawn or never met are left out). Write → Pods ready, all the way."""
    lags = []
    for t, before, n in changes(wanted):
        if n <= before:
            continue
        met = first_time(ready, t, functools.partial(operator.le, n))  # n <= v
        later_drop = first_time(wanted, t, functools.partial(operator.gt, n))  # v < n
        if met is not None and (later_drop is None or met <= later_drop):
            lags.append(met)
    return lags


@dataclass(frozen=True)
class Waits:
    p50_s: float
    p95_s: float
    max_s: float
    started: int
    unstarted: int
    redelivered: int


def wait_figures(records: Sequence[tuple[float | None, float | None, int]]) -> Waits:
    """From (enqueued_at, started_at, deliveries) per job: nearest-rank percentiles."""
    waits = sorted(s - e for e, s, _ in records if e is not None and s is not None)
    return Waits(
        p50_s=percentile(waits, 50),
        p95_s=percentile(waits, 95),
        max_s=waits[-1] if waits else 0.0,
        started=len(waits),
        unstarted=sum(1 for e, s, _ in records if s is None),
        redelivered=sum(1 for *_, d in records if d > 1),
    )


@dataclass(frozen=True)
class Agreement:
    """How far the model's replica timeline is from the measured one."""

    #: The largest replica gap left after allowing ``window_s`` either way.
    max_gap: int
    #: Seconds where the gap is within ``tolerance``, over all seconds compared.
    share_within: float
    window_s: float
    tolerance: int

    @property
    def agrees(self) -> bool:
        return self.max_gap <= self.tolerance


def agreement(
    measured: Series, model: Series, end_s: float, window_s: float = 15.0, tolerance: int = 1
) -> Agreement:
    """Both ways, on a 1 s grid: for each second of one timeline, the nearest value
    of the other within ``window_s`` either side; the gap is the worst of those."""
    grid = range(math.floor(end_s) + 1)
    a = [value_at(measured, t) for t in grid]
    b = [value_at(model, t) for t in grid]
    w = math.floor(window_s)
    gaps = []
    for t in grid:
        lo, hi = max(0, t - w), min(len(grid), t + w + 1)
        gaps.append(
            max(
                min(abs(a[t] - x) for x in b[lo:hi]),
                min(abs(b[t] - x) for x in a[lo:hi]),
            )
        )
    within = sum(1 for g in gaps if g <= tolerance)
    return Agreement(max(gaps, default=0), within / len(gaps), window_s, tolerance)
