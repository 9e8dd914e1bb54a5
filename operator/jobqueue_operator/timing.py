"""When the policy may change the count: cooldowns, the dwell between reversals,
and last-scale times that cannot be trusted. Pure; the clock is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobqueue_operator.decision import Limit
from jobqueue_operator.models import EffectiveSpec

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
