"""The last hour of queue samples the server keeps for its charts, and rates from them.

Pure: the sampler passes the time in, so windows and rates are tested by tables.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    waiting: int
    delayed: int
    in_flight: int
    dead: int
    workers: int
    enqueued_total: int  # the queue's counters, for rates
    finished_total: int  # completed + dead


class SampleBuffer:
    """Per queue, the samples of the last ``window_s`` seconds (oldest dropped first)."""

    def __init__(self, window_s: float = 3600.0) -> None:
        self.window_s = window_s
        self._by_queue: dict[str, deque[Sample]] = {}

    def add(self, queue: str, sample: Sample) -> None:
        rows = self._by_queue.setdefault(queue, deque())
        rows.append(sample)
        while rows and rows[0].at < sample.at - self.window_s:
            rows.popleft()

    def queues(self) -> list[str]:
        return sorted(self._by_queue)

    def series(self, queue: str) -> list[Sample]:
        return list(self._by_queue.get(queue, ()))

    def total(self, queues: Iterable[str]) -> list[Sample]:
        """All ``queues`` summed per sampling instant (samples share their ``at``)."""
        by_at: dict[float, list[Sample]] = {}
        for q in queues:
            for s in self._by_queue.get(q, ()):
                by_at.setdefault(s.at, []).append(s)
        return [
            Sample(
                at=at,
                waiting=sum(s.waiting for s in rows),
                delayed=sum(s.delayed for s in rows),
                in_flight=sum(s.in_flight for s in rows),
                dead=sum(s.dead for s in rows),
                workers=sum(s.workers for s in rows),
                enqueued_total=sum(s.enqueued_total for s in rows),
                finished_total=sum(s.finished_total for s in rows),
            )
            for at, rows in sorted(by_at.items())
        ]


def rates(rows: list[Sample], now: float, over_s: float = 60.0) -> tuple[float, float] | None:
    """(enqueued per second, finished per second) over the last ``over_s`` seconds.

    None until two samples span some time; a counter that went backwards (the
    queue was reset) gives no rate rather than a negative one.
    """
    recent = [s for s in rows if s.at >= now - over_s]
    if len(recent) < 2 or recent[-1].at <= recent[0].at:
        return None
    first, last = recent[0], recent[-1]
    dt = last.at - first.at
    enq = last.enqueued_total - first.enqueued_total
    fin = last.finished_total - first.finished_total
    if enq < 0 or fin < 0:
        return None
    return enq / dt, fin / dt
