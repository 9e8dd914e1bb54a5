"""The simulation's agenda: what happens next, and in which order at one instant.

Kept apart from the engine because the order of simultaneous events is a rule of
its own, and every result depends on it: events at the same instant run as
arrivals, completions, pods becoming ready, then timers (in the policy's declared
order), then the sample for the plot, so a controller always sees the state
*after* what happened at that instant. Within one rank, events run in the order
they were pushed, so a run is reproducible.
"""

from __future__ import annotations

import heapq

# Event kinds; the heap orders by (time, rank, sequence).
ARRIVE, DONE, READY, TIMER, SAMPLE, KILL, APPLY, SNAP = range(8)
_RANK = {
    ARRIVE: 0, DONE: 1, READY: 2, KILL: 3, APPLY: 4, SNAP: 5, TIMER: 10, SAMPLE: 1000,
}  # fmt: skip


class EventQueue:
    """Pending events as ``(time, kind, a, b)``; ``a`` and ``b`` are the kind's arguments."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int, int, int]] = []
        self._seq = 0

    def push(self, t: float, kind: int, a: int = 0, b: int = 0, *, after: int = 0) -> None:
        """Schedule an event; ``after`` places it later among the same kind at ``t``
        (a timer's declared order)."""
        self._seq += 1
        heapq.heappush(self._heap, (t, _RANK[kind] + after, self._seq, kind, a, b))

    def pop_until(self, horizon: float) -> tuple[float, int, int, int] | None:
        """The next event at or before ``horizon``, or None when there is none."""
        if not self._heap or self._heap[0][0] > horizon:
            return None
        t, _, _, kind, a, b = heapq.heappop(self._heap)
        return t, kind, a, b
