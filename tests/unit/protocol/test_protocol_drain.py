"""The drain hash as both sides read it (pure part; the writes run against real
Redis in tests/integration/worker/test_worker_drain.py)."""

from __future__ import annotations

from jobqueue_protocol import drain


def test_parse_read_maps_each_queue_to_its_pods() -> None:
    got = drain.parse_read(["a", "b"], [{"pod-1": "17", b"pod-2": b"18"}, {}])
    assert got == {"a": {"pod-1": 17, "pod-2": 18}, "b": {}}


def test_a_value_that_is_not_a_number_still_lists_the_pod() -> None:
    assert drain.parse_read(["a"], [{"pod-1": "soon"}]) == {"a": {"pod-1": 0}}
