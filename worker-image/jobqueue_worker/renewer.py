"""Lease renewal on a dedicated thread with its own Redis connection.

A handler that hogs the event loop (or holds the GIL in short bursts) must not
let its lease lapse: a lapsed lease means a second worker runs the same job
(BullMQ's stalled-job duplicates). A thread keeps ticking while the loop is stuck.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from jobqueue_worker import metrics
from jobqueue_worker.broker import SyncBroker
from jobqueue_worker.wire import FetchPlan, Held

log = logging.getLogger(__name__)


class LeaseRenewer(threading.Thread):
    def __init__(
        self,
        broker: SyncBroker,
        plan: FetchPlan,
        snapshot: Callable[[], Sequence[Held]],
        interval_s: float,
        on_lost: Callable[[Sequence[Held]], None] | None = None,
    ) -> None:
        super().__init__(name="jq-lease-renewer", daemon=True)
        self._broker = broker
        self._plan = plan
        self._snapshot = snapshot
        self._interval_s = interval_s
        self._on_lost = on_lost
        self._stop = threading.Event()
        self.renewals = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(self._interval_s):
            held = list(self._snapshot())
            if not held:
                continue
            try:
                ok = self._broker.renew(self._plan, held)
            except Exception as exc:  # Redis down: the next tick tries again
                metrics.REDIS_ERRORS.labels(op="renew").inc()
                log.warning("Lease renewal failed", extra={"error": repr(exc)})
                continue
            self.renewals += 1
            lost = [h for h, good in zip(held, ok, strict=True) if not good]
            if lost:
                # A job acked between the snapshot and the renewal is not lost.
                still_held = set(self._snapshot())
                lost = [h for h in lost if h in still_held]
            if lost:
                metrics.LEASES_LOST.inc(len(lost))
                log.warning("Lost leases", extra={"jobs": [h[1] for h in lost]})
                if self._on_lost is not None:
                    self._on_lost(lost)
        self._broker.close()
