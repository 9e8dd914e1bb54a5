"""When a JobQueue's next poll starts: an interval after the start of the last one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_operator.pacing import MIN_PAUSE_SHARE, lateness, next_poll_in


@pytest.mark.parametrize(
    ("interval", "took", "pause"),
    [
        (5.0, 0.0, 5.0),
        (5.0, 0.3, 4.7),
        (5.0, 4.9, 0.5),  # never less than a tenth of the interval
        (5.0, 9.0, 0.5),  # an overrun tick: a short breath, then the next
        (1.0, 0.25, 0.75),
    ],
)
def test_the_pause_counts_from_the_start_of_the_tick(
    interval: float, took: float, pause: float
) -> None:
    assert next_poll_in(interval, took) == pytest.approx(pause)


@given(
    interval=st.floats(min_value=1.0, max_value=300.0),
    took=st.floats(min_value=0.0, max_value=1_000.0),
)
def test_the_period_is_the_interval_unless_the_tick_overran(interval: float, took: float) -> None:
    period = took + next_poll_in(interval, took)
    assert period >= interval - 1e-9
    if took <= interval * (1 - MIN_PAUSE_SHARE):
        assert period == pytest.approx(interval)
    else:
        assert period == pytest.approx(took + interval * MIN_PAUSE_SHARE)


@pytest.mark.parametrize(
    ("due", "started", "late"),
    [
        (None, 12.0, None),  # a loop's first poll was not scheduled
        (10.0, 10.0, 0.0),
        (10.0, 9.5, 0.0),  # a poll a little early is on time, not negatively late
        (10.0, 10.25, 0.25),
        (10.0, 40.0, 30.0),
    ],
)
def test_a_poll_is_late_by_how_long_after_its_due_time_it_started(
    due: float | None, started: float, late: float | None
) -> None:
    assert lateness(due, started) == late


@given(
    interval=st.floats(min_value=1.0, max_value=300.0),
    took=st.floats(min_value=0.0, max_value=1_000.0),
)
def test_polls_paced_by_next_poll_in_are_late_only_when_a_tick_overran(
    interval: float, took: float
) -> None:
    started = 1_000.0
    next_start = started + took + next_poll_in(interval, took)
    late = lateness(started + interval, next_start)
    assert late is not None
    if took <= interval * (1 - MIN_PAUSE_SHARE):
        assert late == pytest.approx(0.0, abs=1e-9)
    else:
        assert late == pytest.approx(took + interval * MIN_PAUSE_SHARE - interval)
