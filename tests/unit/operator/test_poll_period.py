"""When a JobQueue's next poll starts: an interval after the start of the last one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_operator.pacing import MIN_PAUSE_SHARE, next_poll_in


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
