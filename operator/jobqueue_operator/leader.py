"""Leader election on a ``coordination.k8s.io/v1`` Lease, as Kubernetes controllers do.

Every replica runs the per-JobQueue loops, but only the holder of the Lease acts;
the others stand by and serve the admission webhook. The holder renews the
Lease every :data:`RETRY_S`; a standby takes it over once it has seen the same
record, unrenewed, for the Lease's duration. Expiry is judged on the standby's
own monotonic clock from when it first saw that record (as client-go does), so
clock skew between nodes cannot hand the Lease over early. The replace carries
the resourceVersion read, so of two standbys that both see it expire exactly one
wins. A holder that cannot renew within :data:`RENEW_DEADLINE_S` stops acting
before its Lease can expire, so two replicas never act at once unless a write
was already in flight (every write is an idempotent absolute count). A replica
that stops cleanly empties the holder, so the next takes over at once.

After a SIGKILL of the holder the standby acts within DURATION_S + RETRY_S.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from jobqueue_operator import metrics
from jobqueue_operator.ports import KubeError, LeasePort, LeaseView

DURATION_S = 10
RETRY_S = 2.0
RENEW_DEADLINE_S = 7.0

log = logging.getLogger(__name__)


def next_lease(
    seen: LeaseView | None, me: str, duration_s: int, seen_since: float, now: float
) -> LeaseView | None:
    """The Lease to write now (acquire or renew), or ``None`` to stand by. Pure.

    ``seen_since`` is when (on this replica's monotonic clock) the record ``seen``
    was first observed unchanged.
    """
    if seen is None:
        return LeaseView(holder=me, duration_s=duration_s)
    if seen.holder == me:
        return replace(seen, duration_s=duration_s)
    if not seen.holder or now - seen_since >= seen.duration_s:
        return LeaseView(
            holder=me, duration_s=duration_s, transitions=seen.transitions + 1, version=seen.version
        )
    return None


@dataclass
class LeaderElector:
    """Holds or waits for one Lease; :attr:`is_leader` says whether this replica may act."""

    kube: LeasePort
    namespace: str
    name: str
    identity: str
    clock: Callable[[], float] = time.monotonic
    is_leader: bool = False
    _seen: LeaseView | None = field(default=None, init=False)
    _seen_key: tuple[str, str, str] | None = field(default=None, init=False)
    _seen_since: float = field(default=0.0, init=False)
    _renewed_at: float = field(default=0.0, init=False)

    async def run(self) -> None:
        """Try to acquire or renew every :data:`RETRY_S` seconds until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(RETRY_S)

    async def step(self) -> None:
        """One round: read the Lease, write it if ours to take or keep."""
        now = self.clock()
        try:
            seen = await self.kube.read_lease(self.namespace, self.name)
            self._observe(seen, now)
            wanted = next_lease(seen, self.identity, DURATION_S, self._seen_since, now)
            won = wanted is not None and await self.kube.write_lease(
                self.namespace,
                self.name,
                wanted,
                acquired=datetime.now(UTC) if not self.is_leader else None,
            )
        except KubeError as exc:
            log.warning("Leader election: %s", exc)
            won = False
        if won:
            self._renewed_at = now
            self._set(True)
        elif not self.is_leader or now - self._renewed_at >= RENEW_DEADLINE_S:
            self._set(False)

    async def release(self) -> None:
        """On a clean stop: empty the holder so a standby takes over at once."""
        if not self.is_leader:
            return
        self._set(False)
        try:
            seen = await self.kube.read_lease(self.namespace, self.name)
            if seen is not None and seen.holder == self.identity:
                await self.kube.write_lease(
                    self.namespace, self.name, replace(seen, holder="", duration_s=1), acquired=None
                )
        except KubeError as exc:
            log.warning("Leader election: could not release the Lease: %s", exc)

    def _observe(self, seen: LeaseView | None, now: float) -> None:
        key = None if seen is None else (seen.holder, seen.renewed, seen.version)
        if key != self._seen_key:
            self._seen_key, self._seen_since = key, now
        self._seen = seen

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info(
                "Leader election: %s the Lease %s/%s as %s",
                "acquired" if leader else "lost",
                self.namespace,
                self.name,
                self.identity,
            )
        self.is_leader = leader
        metrics.LEADER.set(1 if leader else 0)
