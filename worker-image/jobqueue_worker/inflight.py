"""The jobs one worker holds: the running ones, and the finished ones whose ack
has not reached Redis yet. The event loop changes it; the lease-renewal thread
reads it (``held_leases``), hence the lock around the running jobs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from jobqueue_protocol.heartbeat import ActiveJob
from jobqueue_worker.wire import Fetched, FinishOp, Held


@dataclass
class Running:
    queue: str
    id: str
    token: str
    type: str
    started_at: float  # epoch seconds, Redis clock
    task: asyncio.Task[None] | None = None


def released(job: Running | Fetched) -> FinishOp:
    """Its hand-back: to the front of its band, without counting a delivery."""
    return FinishOp(queue=job.queue, id=job.id, token=job.token, op="release")


class InFlight:
    def __init__(self) -> None:
        self.running: dict[str, Running] = {}
        self.pending: list[FinishOp] = []  # finish ops for the next round trip
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.running)

    def start(self, job: Running) -> None:
        with self._lock:
            self.running[job.id] = job

    def finish(self, job: Running, op: FinishOp) -> bool:
        """Queue its ack; False when the job was handed back meanwhile (result dropped)."""
        with self._lock:
            if self.running.get(job.id) is not job:
                return False
            del self.running[job.id]
        self.pending.append(op)
        return True

    def hand_back_all(self) -> list[Running]:
        """Every running job goes back to the front of its band, without using a delivery."""
        with self._lock:
            leftovers = list(self.running.values())
            self.running.clear()
        self.pending += [released(a) for a in leftovers]
        return leftovers

    def held_leases(self) -> list[Held]:
        """Running jobs and finished ones whose ack has not landed yet (Redis slow or down)."""
        with self._lock:
            held = [(a.queue, a.id, a.token) for a in self.running.values()]
        # A list copy is atomic under the GIL; the loop thread only appends/swaps.
        held += [(op.queue, op.id, op.token) for op in list(self.pending) if op.op != "release"]
        return held

    def types_besides(self, job: Running) -> list[str]:
        with self._lock:
            return [a.type for a in self.running.values() if a is not job]

    def free_caps(self, caps: Mapping[str, int]) -> dict[str, int] | None:
        """Free slots per capped job type in this worker, for the fetch script."""
        if not caps:
            return None
        running: dict[str, int] = {}
        with self._lock:
            for a in self.running.values():
                running[a.type] = running.get(a.type, 0) + 1
        return {t: max(0, cap - running.get(t, 0)) for t, cap in caps.items()}

    def jobs(self) -> tuple[ActiveJob, ...]:
        with self._lock:
            return tuple(
                ActiveJob(id=a.id, type=a.type, started_at=a.started_at)
                for a in self.running.values()
            )
