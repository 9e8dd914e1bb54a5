"""The drain request: how the operator tells the workers of Pods it chose to
remove on a scale-down to start no new job.

The operator writes it (``request``, ``withdraw``); every worker reads it on each
fetch: the step script is given the worker's Pod name and leases nothing while
that name is a field of a served queue's drain hash (``keys.drain_key``). Anyone
else reads it with ``read``/``parse_read`` (the CLI, tests).

- field: the Pod name; value: when it was chosen (ms since epoch, the
  operator's clock; informational only, nothing compares it);
- the hash expires ``ttl_ms`` after the last request, so a request made by an
  operator that died before deleting the Pod does not keep a worker idle forever.

No Redis client here: the functions queue commands on the caller's pipeline
(any object with ``hset``/``pexpire``/``hdel``/``hgetall``), so both sides share
the format without this package choosing their connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jobqueue_protocol import keys


class DrainWriter(Protocol):
    def hset(self, name: str, *, mapping: Any) -> Any: ...

    def pexpire(self, name: str, time: int) -> Any: ...

    def hdel(self, name: str, *keys: str) -> Any: ...


class DrainReader(Protocol):
    def hgetall(self, name: str) -> Any: ...


def request(
    pipe: DrainWriter, queues: Sequence[str], pods: Sequence[str], *, now_ms: int, ttl_ms: int
) -> None:
    """List ``pods`` in every queue's drain hash; the TTL outlives a dead operator."""
    for q in queues:
        pipe.hset(keys.drain_key(q), mapping=dict.fromkeys(pods, now_ms))
        pipe.pexpire(keys.drain_key(q), ttl_ms)


def withdraw(pipe: DrainWriter, queues: Sequence[str], pods: Sequence[str]) -> None:
    """Remove ``pods`` from every queue's drain hash (their workers fetch again)."""
    if not pods:
        return
    for q in queues:
        pipe.hdel(keys.drain_key(q), *pods)


def read(pipe: DrainReader, queues: Sequence[str]) -> None:
    """Queue one read per queue; give the pipeline's replies to ``parse_read``."""
    for q in queues:
        pipe.hgetall(keys.drain_key(q))


def parse_read(
    queues: Sequence[str], replies: Sequence[Mapping[Any, Any]]
) -> dict[str, dict[str, int]]:
    """Queue → Pod → chosen-at ms; a value that is not a number counts as 0."""
    out: dict[str, dict[str, int]] = {}
    for q, fields in zip(queues, replies, strict=True):
        pods: dict[str, int] = {}
        for pod, value in fields.items():
            name = pod.decode() if isinstance(pod, bytes) else str(pod)
            try:
                pods[name] = int(value)
            except (TypeError, ValueError):
                pods[name] = 0
        out[q] = pods
    return out
