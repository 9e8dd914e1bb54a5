"""Is a queue healthy? A pure verdict on one ``QueueStats`` snapshot.

Pure on purpose: no Redis, no clock, no I/O. The ``jobqueue health`` CLI, the
operator (a future condition or Event) and the tests all feed it the same
snapshot from ``jobqueue_protocol.stats.queue_stats`` and get the same answer,
so "warning" means one thing everywhere. The default thresholds
(queue depth warning 200, critical 500) match the PrometheusRule in
``manifests/monitoring/prometheusrule.yaml``; callers may pass their own.

``jobqueue_protocol.stats`` is imported for its type only, under
``TYPE_CHECKING``, so importing this module never imports ``redis``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobqueue_protocol.stats import QueueStats


class Level(enum.StrEnum):
    """Three levels, ordered: the worst reason decides a queue's level."""

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.HEALTHY: 0, Level.WARNING: 1, Level.CRITICAL: 2}


def worst(levels: Iterable[Level]) -> Level:
    """The most severe level (``HEALTHY`` for none)."""
    return max(levels, key=lambda lv: lv.rank, default=Level.HEALTHY)


@dataclass(frozen=True)
class Reason:
    """Why a queue is not healthy; ``code`` is stable for scripts, ``message`` for people."""

    level: Level
    code: str
    message: str


@dataclass(frozen=True)
class Thresholds:
    """When a queue turns warning or critical; each pair must be warning <= critical.

    Depth counts waiting jobs (all priorities, due delayed jobs included); age is
    the oldest waiting job's, on Redis's clock.
    """

    depth_warning: int = 200
    depth_critical: int = 500
    oldest_age_warning_s: float = 300.0
    oldest_age_critical_s: float = 900.0
    dead_warning: int = 1
    dead_critical: int = 1000

    def __post_init__(self) -> None:
        for low, high, name in (
            (self.depth_warning, self.depth_critical, "depth"),
            (self.oldest_age_warning_s, self.oldest_age_critical_s, "oldest_age"),
            (self.dead_warning, self.dead_critical, "dead"),
        ):
            if low < 0 or high < low:
                raise ValueError(f"{name}: need 0 <= warning <= critical, got {low} and {high}")


@dataclass(frozen=True)
class Health:
    """A queue's verdict: its level and every reason (empty when healthy)."""

    queue: str
    level: Level
    reasons: tuple[Reason, ...]

    @property
    def healthy(self) -> bool:
        return self.level is Level.HEALTHY


def _band(value: float, warning: float, critical: float) -> Level:
    if value >= critical:
        return Level.CRITICAL
    if value >= warning:
        return Level.WARNING
    return Level.HEALTHY


def queue_health(stats: QueueStats, thresholds: Thresholds | None = None) -> Health:
    """Judge one queue: depth, oldest age, dead letters and live workers.

    Workers: nobody alive while jobs wait (or due delayed jobs wait to be
    promoted) is critical, because nothing will ever drain the queue; an empty
    queue without workers is healthy (scaled to zero on purpose). Every live
    worker draining while jobs wait is a warning (a rollout or a stuck shutdown).
    """
    t = thresholds or Thresholds()
    reasons: list[Reason] = []
    waiting = stats.waiting + stats.delayed_due

    level = _band(waiting, t.depth_warning, t.depth_critical)
    if level is not Level.HEALTHY:
        limit = t.depth_critical if level is Level.CRITICAL else t.depth_warning
        reasons.append(Reason(level, "depth", f"{waiting} jobs waiting (>= {limit})"))

    age = stats.oldest_age_s()
    level = _band(age, t.oldest_age_warning_s, t.oldest_age_critical_s)
    if level is not Level.HEALTHY:
        limit_s = t.oldest_age_critical_s if level is Level.CRITICAL else t.oldest_age_warning_s
        reasons.append(
            Reason(level, "oldest_age", f"oldest job waiting {age:.0f} s (>= {limit_s:.0f} s)")
        )

    level = _band(stats.dead, t.dead_warning, t.dead_critical)
    if level is not Level.HEALTHY:
        reasons.append(
            Reason(level, "dead_letters", f"{stats.dead} dead-lettered jobs need a look")
        )

    alive = [w for w in stats.workers if w.state != "draining"]
    if waiting > 0 and not stats.workers:
        reasons.append(
            Reason(Level.CRITICAL, "no_workers", f"no live worker while {waiting} jobs wait")
        )
    elif waiting > 0 and not alive:
        reasons.append(
            Reason(
                Level.WARNING,
                "all_draining",
                f"all {len(stats.workers)} live workers are draining while {waiting} jobs wait",
            )
        )

    return Health(stats.queue, worst(r.level for r in reasons), tuple(reasons))
