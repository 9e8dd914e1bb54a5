"""The operator exports each queue's gauges once, and drops a queue's series when it goes."""

from __future__ import annotations

from jobqueue_operator import metrics
from jobqueue_operator.metrics import QueueSample


def _value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def _sample(waiting: dict[int, int], dead: int = 0) -> QueueSample:
    return QueueSample(waiting, oldest_age_s=4.5, delayed=1, in_flight=2, dead=dead)


def test_per_queue_series_are_set_and_removed_with_the_queue_and_the_jobqueue() -> None:
    jq = {"namespace": "ns", "jobqueue": "pool"}
    metrics.set_queue_gauges(
        "ns", "pool", {"a": _sample({1: 3, 5: 7}, dead=2), "b": _sample({5: 1})}
    )
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="5") == 7
    assert _value("jobqueue_operator_queue_dead", **jq, queue="a") == 2
    assert _value("jobqueue_operator_queue_oldest_age_seconds", **jq, queue="b") == 4.5

    # Queue b left the JobQueue (a pattern stopped matching): its series go.
    metrics.set_queue_gauges("ns", "pool", {"a": _sample({1: 3})})
    assert _value("jobqueue_operator_queue_in_flight", **jq, queue="b") is None
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="5") is None
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="1") == 3

    metrics.forget("ns", "pool")
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="1") is None
    assert _value("jobqueue_operator_queue_delayed", **jq, queue="a") is None


def test_a_jobqueue_forgotten_and_polled_again_exports_its_series_again() -> None:
    jq = {"namespace": "ns", "jobqueue": "again"}
    metrics.set_queue_gauges("ns", "again", {"a": _sample({1: 3})})
    metrics.forget("ns", "again")
    metrics.set_queue_gauges("ns", "again", {"a": _sample({1: 4}, dead=1)})
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="1") == 4
    assert _value("jobqueue_operator_queue_dead", **jq, queue="a") == 1
    metrics.forget("ns", "again")


def test_a_priority_that_comes_back_is_exported_again() -> None:
    jq = {"namespace": "ns", "jobqueue": "prio"}
    metrics.set_queue_gauges("ns", "prio", {"a": _sample({1: 3, 2: 5})})
    metrics.set_queue_gauges("ns", "prio", {"a": _sample({1: 3})})
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="2") is None
    metrics.set_queue_gauges("ns", "prio", {"a": _sample({1: 3, 2: 6})})
    assert _value("jobqueue_operator_queue_waiting", **jq, queue="a", priority="2") == 6
    metrics.forget("ns", "prio")


def test_no_created_series() -> None:
    metrics.SCALE_ACTIONS.labels("ns", "pool", "up").inc()
    names = {m.name for m in metrics.REGISTRY.collect()}
    samples = {s.name for m in metrics.REGISTRY.collect() for s in m.samples}
    assert "jobqueue_operator_scale_actions_total" in samples
    assert not any(name.endswith("_created") for name in samples | names)
