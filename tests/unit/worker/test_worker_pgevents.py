"""The pure side of the PostgreSQL write-back: event order, batch collapse, rebuilt events."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_worker.pgevents import (
    DURATION_MS_MAX,
    JobEvent,
    collapse,
    event_rank,
    from_redis_record,
    rank,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", 0),
        ("migrated", 0),
        ("running", 1),
        ("retry_scheduled", 2),
        ("completed", 2),
        ("failed", 2),
        ("dead", 2),
    ],
)
def test_rank_orders_waiting_running_finished(status: str, expected: int) -> None:
    assert rank(status) == expected


def test_a_hand_back_ranks_with_running_so_the_next_start_still_applies() -> None:
    assert event_rank("migrated") == event_rank("running") == 1


def _life(job_id: str) -> list[JobEvent]:
    return [
        JobEvent(job_id, 1, "running", "a", 10.0, 10.0),
        JobEvent(job_id, 1, "retry_scheduled", "a", 11.0, 10.0, "boom\x00", 1000, "Tb\x00"),
        JobEvent(job_id, 2, "running", "b", 12.0, 12.0),
        JobEvent(job_id, 2, "completed", "b", 13.0, 12.0, None, 900),
    ]


def test_collapse_keeps_the_furthest_event_per_attempt_and_the_latest_failure() -> None:
    batch = collapse(_life("x"))
    assert batch.failures == [["x"], ["boom\\0"], [11.0]]
    ids, attempts, statuses, workers, at, started, errors, durations, traces = batch.events
    assert ids == ["x", "x"]
    assert attempts == [1, 2]
    assert statuses == ["retry_scheduled", "completed"]
    assert workers == ["a", "b"]
    assert at == [11.0, 13.0]
    assert started == [10.0, 12.0]
    assert errors == ["boom\\0", None]
    assert durations == [1000, 900]
    assert traces == ["Tb\\0", None]


def test_a_later_event_of_the_same_rank_wins() -> None:
    first = JobEvent("y", 1, "running", "a", 5.0, 5.0)
    again = JobEvent("y", 1, "running", "b", 6.0, 6.0)
    assert collapse([first, again]).events[3] == ["b"]
    assert collapse([again, first]).events[3] == ["a"]


@given(st.integers(min_value=0, max_value=10_000))
def test_collapse_does_not_depend_on_the_order_or_repetition_of_events(seed: int) -> None:
    rng = random.Random(seed)
    events = _life("p") + _life("q")
    shuffled = events * 2
    rng.shuffle(shuffled)
    assert collapse(shuffled) == collapse(events)


def test_a_duration_past_the_integer_column_is_capped_not_refused() -> None:
    events = [
        JobEvent("long", 1, "completed", "w", 1.0, 0.0, None, DURATION_MS_MAX + 1),
        JobEvent("short", 1, "completed", "w", 1.0, 0.0, None, DURATION_MS_MAX),
    ]
    assert collapse(events).events[7] == [DURATION_MS_MAX, DURATION_MS_MAX]


def test_an_error_with_a_lone_surrogate_becomes_valid_utf8() -> None:
    event = JobEvent("s", 1, "failed", "w", 1.0, 0.0, "bad name \udcff\x00 é", 5, "\ud800")
    _, errors, _ = collapse([event]).failures
    assert errors == ["bad name \\udcff\\0 é"]
    assert collapse([event]).events[8] == ["\\ud800"]
    for text in (*errors, *collapse([event]).events[8]):
        text.encode("utf-8")  # raises if anything is left that UTF-8 cannot carry


def test_rows_come_sorted_by_job_id_so_writers_lock_in_one_order() -> None:
    events = [JobEvent(i, 1, "running", "w", 1.0) for i in ("c", "a", "b")]
    assert collapse(events).events[0] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("status", "finished_at", "expected"),
    [
        ("completed", 20.0, "completed"),
        ("dead", 20.0, "dead"),
        ("failed", 20.0, "failed"),
        ("active", 20.0, None),
        ("queued", None, None),
        ("retry_scheduled", 20.0, None),
        ("completed", None, None),
    ],
)
def test_only_finished_redis_records_become_repair_events(
    status: str, finished_at: float | None, expected: str | None
) -> None:
    ev = from_redis_record("j", status, 3, "w:1", finished_at, 19.0, "err", 0.5)
    assert (ev.status if ev else None) == expected
    if ev is not None:
        assert (ev.attempt, ev.worker_id, ev.duration_ms, ev.started_at) == (3, "w:1", 500, 19.0)
