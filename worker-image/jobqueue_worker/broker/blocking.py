"""Blocking access to Redis for the lease-renewal thread.

Its own connection, so renewals keep flowing while a handler hogs the worker's
event loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from jobqueue_protocol.redis_connect import sync_client
from jobqueue_protocol.redis_url import parse_redis_url
from jobqueue_worker import lua, slot_fanout
from jobqueue_worker.wire import BrokerSettings, FetchPlan, renew_args


class SyncBroker:
    """Blocking access for the lease-renewal thread."""

    def __init__(self, url: str, limits: BrokerSettings | None = None) -> None:
        self.limits = limits or BrokerSettings()
        target = parse_redis_url(url)
        #: Redis Cluster: a worker's queues sit in several slots, one call per queue.
        self.cluster = target.mode == "cluster"
        self.redis: redis.Redis = sync_client(
            target,
            decode_responses=True,
            encoding_errors="replace",
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
        )
        self._scripts = {s.name: self.redis.register_script(lua.source(s)) for s in lua.SCRIPTS}

    def close(self) -> None:
        self.redis.close()

    def renew(self, plan: FetchPlan, held: Sequence[tuple[str, str, str]]) -> list[bool]:
        if not held:
            return []
        if self.cluster and len(plan.queues) > 1:
            return slot_fanout.renew_each_queue(self.renew, plan, held)
        reply = self._scripts["renew"](
            keys=plan.all_keys, args=renew_args(plan, self.limits.lease_ms, held)
        )
        return [int(x) == 1 for x in reply]
