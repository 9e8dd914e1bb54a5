"""Durable acks: a worker that fetches nothing new until its replicas hold its acks.

Durable enqueue (WAIT after the enqueue) keeps acknowledged jobs through a failover,
but the completions would still replicate asynchronously: a promoted replica that
lagged by seconds has those jobs waiting or leased again, and they all run twice.
With ``JQW_DURABLE_REPLICAS`` every step ends with WAIT, and while a WAIT falls
short the worker holds back new fetches, so what a failover can re-run stays
within the jobs the worker held: the running ones and the acks not yet confirmed.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class DurableAcks:
    """Whether the last acks sent are confirmed; logs each change once."""

    def __init__(self, replicas: int, timeout_s: float) -> None:
        self.replicas = replicas
        self.timeout_s = timeout_s
        #: True while the last WAIT fell short: fetch nothing, confirm first.
        self.held = False

    def note(self, confirmed: bool) -> None:
        if self.held != confirmed:
            return
        self.held = not confirmed
        if confirmed:
            log.info("Replicas caught up; fetching again", extra={"replicas": self.replicas})
        else:
            log.warning(
                "Fewer replicas than JQW_DURABLE_REPLICAS confirmed the last acks;"
                " fetching nothing until they do",
                extra={"replicas": self.replicas, "timeout_s": self.timeout_s},
            )
