"""When the policy may change the count: cooldowns, the dwell between reversals,
last-scale times that cannot be trusted, and when the last worker may go. Pure;
the clock is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobqueue_operator.decision import Limit
from jobqueue_operator.models import EffectiveSpec
from jobqueue_operator.observation import Observation

#: Whatever the cooldowns, the count does not change direction twice within this.
DIRECTION_DWELL_S = 60.0


def clamp_stamp(stamp: float | None, now: float) -> float | None:
    """A last-scale time from status, never in the future.

    A node whose clock runs ahead, or a clock stepped back, would otherwise hold
    the cooldowns for as long as the skew. An unreadable stamp counts as now (the
    cooldown runs once more); minus infinity as never.
    """
    if stamp is None or stamp == -math.inf:
        return None
    if math.isnan(stamp) or stamp > now:
        return now
    return stamp


@dataclass(frozen=True, slots=True)
class Cooldowns:
    spec: EffectiveSpec
    last_up: float | None
    last_down: float | None
    now: float

    def up_blocked_for(self, *, severe: bool = False) -> tuple[float, Limit]:
        """Seconds until a scale-up is allowed (0 when it is), and the rule that holds it.

        A ``severe`` signal (4× past a threshold) is no flapping: it skips the dwell.
        """
        cooldown = remaining(self.last_up, self.spec.up_cooldown_s, self.now)
        dwell = 0.0 if severe else self._dwell(self.last_down, self.last_up)
        return (dwell, Limit.DWELL) if dwell > cooldown else (cooldown, Limit.COOLDOWN)

    def down_blocked_for(self) -> tuple[float, Limit]:
        """Seconds until a scale-down is allowed; counted from the last scale either way."""
        last = max((t for t in (self.last_up, self.last_down) if t is not None), default=None)
        cooldown = remaining(last, self.spec.down_cooldown_s, self.now)
        dwell = self._dwell(self.last_up, self.last_down)
        return (dwell, Limit.DWELL) if dwell > cooldown else (cooldown, Limit.COOLDOWN)

    def _dwell(self, opposite: float | None, same: float | None) -> float:
        """Time left before reversing the last scale (in the ``opposite`` direction).

        Whatever the cooldowns (a scale-down cooldown of 0 is valid), the count
        never changes direction twice within DIRECTION_DWELL_S: a queue that
        alternates between full and empty would otherwise flip it every poll.
        """
        if opposite is None or (same is not None and same >= opposite):
            return 0.0
        return remaining(opposite, DIRECTION_DWELL_S, self.now)


def remaining(last: float | None, cooldown_s: float, now: float) -> float:
    if last is None:
        return 0.0
    return max(0.0, last + cooldown_s - now)


def held_message(limit: Limit, direction: str, wait: float) -> str:
    if limit is Limit.DWELL:
        return f"no reversal within {DIRECTION_DWELL_S:g}s of the last scale ({wait:.0f}s left)"
    return f"scale-{direction} cooldown for {wait:.0f}s"


def zero_held(spec: EffectiveSpec, obs: Observation, now: float) -> tuple[Limit, str] | None:
    """Why the last worker must stay, if it must: anything waiting, running or busy lately.

    Not lifted by ``allowDisruption``: removing the last worker with work left
    only hands the work back to an empty pool, which wakes again at once.
    """
    if obs.depth or obs.in_flight or obs.busy_workers:
        return (
            Limit.BUSY_WORKERS,
            f"keeping 1 worker: {obs.depth} waiting, {obs.in_flight} in flight, "
            f"{obs.busy_workers} busy",
        )
    if obs.next_delayed_in_s is not None and obs.next_delayed_in_s <= spec.pod_startup_s:
        return (
            Limit.DELAYED_WORK,
            f"keeping 1 worker: a delayed job is due in {max(obs.next_delayed_in_s, 0):.0f}s, "
            f"within the {spec.pod_startup_s:g}s a new pod takes to start",
        )
    if obs.last_busy_at is not None:
        idle_s = now - obs.last_busy_at
        if idle_s < spec.scale_to_zero_after_s:
            return (
                Limit.SCALE_TO_ZERO_DELAY,
                f"idle for {idle_s:.0f}s of the {spec.scale_to_zero_after_s:g}s "
                "before scaling to zero",
            )
    return None
