"""Queue patterns against a real Redis (bounded SCAN, cache, cap) and a real API server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
import redis.asyncio
from operator_harness import Kubectl, OperatorProcess, deployment, fill, jobqueue, wait_for

from jobqueue_operator.observe import PatternCache, scan_queues
from jobqueue_operator.ports import QueueSource
from jobqueue_protocol import keys

pytestmark = [pytest.mark.redis]


def make_queues(redis_url: str, *names: str) -> None:
    """A queue exists for the operator once it has a counters hash (every enqueue writes one)."""
    client = redis.Redis.from_url(redis_url)
    try:
        for name in names:
            client.hincrby(keys.counters_key(name), keys.COUNTER_ENQUEUED, 0)
            client.hset(keys.counters_key(name), "created", 1)
    finally:
        client.close()


async def test_scan_finds_matching_queues_only(redis_url: str) -> None:
    make_queues(redis_url, "tenant:a", "tenant:b", "tenant:a:slow", "other")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        names, complete = await scan_queues(client, "tenant:?")
        assert (names, complete) == (["tenant:a", "tenant:b"], True)
        names, _ = await scan_queues(client, "tenant:*")
        assert names == ["tenant:a", "tenant:a:slow", "tenant:b"]
    finally:
        await client.aclose()


async def test_cache_refreshes_every_n_polls_and_the_cap_keeps_named_and_high_priority(
    redis_url: str,
) -> None:
    make_queues(redis_url, *(f"bulk:{i:02d}" for i in range(8)), "vip:1")
    client = redis.asyncio.Redis.from_url(redis_url)
    cache = PatternCache()
    sources = (
        QueueSource(name="main"),
        QueueSource(pattern="bulk:*"),
        QueueSource(pattern="vip:*", priority=10),
    )
    try:

        async def expand() -> list[str]:
            found = await cache.expand(
                client, sources, max_queues=4, refresh_every=3, timeout_s=2.0
            )
            return [q.name for q in found.queues]

        first = await expand()
        assert first == ["main", "vip:1", "bulk:00", "bulk:01"]
        found = await cache.expand(client, sources, max_queues=4, refresh_every=3, timeout_s=2.0)
        assert (found.matched, found.truncated, found.complete) == (9, True, True)
        make_queues(redis_url, "vip:0")
        assert await expand() == first, "cached: no SCAN on this poll"
        assert await expand() == ["main", "vip:0", "vip:1", "bulk:00"], "refreshed on poll 4"
    finally:
        await client.aclose()


@pytest.mark.k8s
@pytest.mark.slow
def test_a_pattern_matched_queue_drives_scaling_and_is_reported(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    """Jobs land in a queue the spec never names: the pattern finds it, its weight counts."""
    make_queues(redis_url, "tenant:a", "tenant:b")
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue(
            "tenants",
            namespace,
            "worker",
            redis_url,
            pollingIntervalSeconds=1,
            minReplicas=1,
            maxReplicas=10,
            scaleUp={"queueDepth": 10, "cooldownSeconds": 600, "maxStep": 3},
            scaleDown={"queueDepth": 2, "cooldownSeconds": 600},
            weightedQueues=[{"pattern": "tenant:*", "weight": 2, "reservedReplicas": 2}],
            queueDiscovery={"refreshEveryPolls": 1},
        ),
    )
    start_operator()
    wait_for(
        lambda: (
            (kubectl.status("tenants", namespace).get("queueDiscovery") or {}).get("matchedQueues")
            == 2
        ),
        20,
        "the pattern expanded",
    )
    discovery = kubectl.status("tenants", namespace)["queueDiscovery"]
    assert discovery["queues"] == ["tenants:jobs", "tenant:a", "tenant:b"]
    assert discovery["truncated"] is False
    # 5 jobs of weight 2 count as 10: the scale-up threshold (severity 1, +1); the
    # queue also has work now, so its reserved floor of 2 applies in the same tick.
    fill(redis_url, "tenant:b", 5)
    status = wait_for(
        lambda: kubectl.scaled_to("worker", "tenants", namespace, 2), 10, "the scale-up"
    )
    assert status["observed"]["depth"] == 10
