"""Summing the protocol's per-queue stats into one observation; endpoint identity."""

from __future__ import annotations

from jobqueue_operator.observe import endpoint_for, summarise
from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_protocol.stats import QueueStats, WorkerHeartbeat


def _hb(worker: str, active: int) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker, "busy" if active else "idle", 100.0, active, (), 0.0, 0, 0, 0, 0.0, None
    )


def _stats(
    queue: str, waiting: int, oldest: float | None, workers: tuple[WorkerHeartbeat, ...] = ()
) -> QueueStats:
    return QueueStats(queue, {5: waiting}, waiting, 1, 2, 3, oldest, workers, {}, 100.0)


def test_summarise_adds_depth_and_takes_the_oldest_age() -> None:
    shared = _hb("w1", 1)
    obs = summarise(
        {
            "a": _stats("a", 10, 90.0, (shared,)),
            "b": _stats("b", 5, 40.0, (shared, _hb("w2", 0))),
            "c": _stats("c", 0, None),
        }
    )
    assert obs.depth == 15
    assert obs.oldest_age_s == 60.0
    assert (obs.delayed, obs.in_flight, obs.dead) == (3, 6, 9)
    assert (obs.workers, obs.busy_workers) == (2, 1)


def test_due_delayed_jobs_count_as_waiting() -> None:
    """At zero replicas nobody promotes due retries; they must still wake the pool."""
    due = QueueStats("a", {5: 0}, 0, 4, 0, 0, None, (), {}, 100.0, delayed_due=3)
    obs = summarise({"a": due})
    assert obs.depth == 3
    assert obs.delayed == 4


def test_empty_is_zero() -> None:
    obs = summarise({})
    assert (obs.depth, obs.oldest_age_s, obs.workers) == (0, 0.0, 0)


def test_endpoint_identity_includes_the_password_but_never_shows_it() -> None:
    conn = RedisConnection.model_validate({"host": "r", "port": 6380})
    a, b = endpoint_for(conn, "s3cret"), endpoint_for(conn, "other")
    assert a != b
    assert a == endpoint_for(conn, "s3cret")
    assert "s3cret" not in repr(a)
    assert a.display() == "redis://r:6380/0"
    tls = endpoint_for(RedisConnection.model_validate({"url": "rediss://r:6379/1"}), None)
    assert tls.tls


async def test_one_pool_per_endpoint_shared_and_released() -> None:
    from jobqueue_operator.observe import RedisPools

    pools = RedisPools()
    conn = RedisConnection.model_validate({"host": "r"})
    a = pools.client("ns/a", endpoint_for(conn, "pw"))
    b = pools.client("ns/b", endpoint_for(conn, "pw"))
    assert a is b
    assert pools.open_clients == 1
    other = pools.client("ns/c", endpoint_for(conn, "rotated"))
    assert other is not a
    assert pools.open_clients == 2
    # ns/c's Secret is fixed: it moves to the shared pool and its old one closes.
    assert pools.client("ns/c", endpoint_for(conn, "pw")) is a
    assert pools.open_clients == 1
    pools.release("ns/a")
    assert pools.open_clients == 1
    pools.release("ns/b")
    pools.release("ns/c")
    assert pools.open_clients == 0
    await pools.close()


def test_worker_loads_by_pod_with_the_run_time_of_their_jobs() -> None:
    from jobqueue_protocol.stats import ActiveJob

    jobs = (ActiveJob("j1", "sleep", 70.0), ActiveJob("j2", "sleep", 95.0))
    hb = WorkerHeartbeat("w1", "busy", 100.0, 2, jobs, 0.0, 123, 7, 0, 0.0, "pod-1")
    podless = _hb("w2", 0)  # a worker outside Kubernetes has no pod to choose
    obs = summarise({"a": _stats("a", 0, None, (hb, podless))})
    assert len(obs.worker_loads) == 1
    load = obs.worker_loads[0]
    assert (load.pod_name, load.active_jobs, load.processed, load.rss_bytes) == ("pod-1", 2, 7, 123)
    assert load.busy_s == 35.0  # (100 - 70) + (100 - 95) on Redis's clock
    assert load.cpu_cores is None  # the heartbeat does not carry CPU yet


def test_weights_scale_depth_and_age_and_a_queue_with_work_claims_its_floor() -> None:
    from jobqueue_operator.observe import WatchedQueue

    weights = {
        "a": WatchedQueue("a", weight=2.0, reserved=3),
        "b": WatchedQueue("b", weight=0.5, reserved=5),
        "c": WatchedQueue("c", reserved=9),
    }
    obs = summarise(
        {
            "a": _stats("a", 10, 90.0),  # age 10 s, weight 2: presses like 20 s
            "b": _stats("b", 4, 70.0),  # age 30 s, weight 0.5: 15 s
            "c": QueueStats("c", {5: 0}, 0, 0, 0, 0, None, (), {}, 100.0),  # idle: no floor
        },
        weights,
    )
    assert obs.depth == 22  # 2 x 10 + 0.5 x 4
    assert obs.oldest_age_s == 20.0
    # a and b have work (b: 4 waiting; both also have 2 in flight in _stats); c has none
    assert obs.reserved_floor == 5
    assert summarise({"a": _stats("a", 10, 90.0)}).depth == 10, "no weights: plain sums"


def test_sources_merge_named_queues_with_their_weighted_entries() -> None:
    from jobqueue_operator.models import JobQueueSpec
    from jobqueue_operator.observe import QueueSource
    from jobqueue_operator.reconcile import _sources

    spec = JobQueueSpec.model_validate(
        {
            "scaleTargetRef": {"name": "w"},
            "redis": {"host": "r"},
            "queues": ["a", "b"],
            "weightedQueues": [
                {"name": "b", "weight": 3, "reservedReplicas": 2},
                {"name": "c", "priority": 5},
                {"pattern": "tenant:*", "weight": 0.5},
            ],
        }
    )
    assert _sources(spec) == (
        QueueSource("a"),
        QueueSource("b", weight=3.0, reserved=2),
        QueueSource("c", priority=5),
        QueueSource(pattern="tenant:*", weight=0.5),
    )


def test_concurrency_from_heartbeats_and_the_next_delayed_job() -> None:
    """The in-flight floor needs the workers' slots; scale-to-zero the next retry's time."""
    import dataclasses

    old = _hb("w1", 1)  # an older worker does not report its slots
    new = dataclasses.replace(_hb("w2", 2), concurrency=8)
    a = dataclasses.replace(_stats("a", 0, None, (old, new)), next_delayed_at=112.0)
    b = dataclasses.replace(_stats("b", 0, None), next_delayed_at=104.5)
    obs = summarise({"a": a, "b": b, "c": _stats("c", 0, None)})
    assert obs.pod_concurrency == 8
    assert obs.next_delayed_in_s == 4.5
    bare = summarise({"c": _stats("c", 0, None, (old,))})
    assert (bare.pod_concurrency, bare.next_delayed_in_s) == (None, None)
