"""When the migrator's /healthz calls its loop wedged: a table over the clock."""

from __future__ import annotations

from typing import Any, cast

import pytest

from jobqueue_worker.migrator import Migrator
from jobqueue_worker.migrator_http import STALL_S, pass_age_s, stalled


def migrator_at(clock: list[float], poll_interval_s: float) -> Migrator:
    # The store and broker are not touched by the health rule.
    return Migrator(
        cast(Any, None), cast(Any, None), poll_interval_s=poll_interval_s, clock=lambda: clock[0]
    )


@pytest.mark.parametrize(
    ("poll_interval_s", "since_pass_s", "wedged"),
    [
        (1.0, 0.0, False),
        (1.0, STALL_S - 0.1, False),
        (1.0, STALL_S + 0.1, True),
        (30.0, STALL_S + 0.1, False),  # ten long poll intervals are allowed
        (30.0, 300.0, False),
        (30.0, 300.1, True),
    ],
)
def test_a_loop_without_a_pass_for_long_is_wedged(
    poll_interval_s: float, since_pass_s: float, wedged: bool
) -> None:
    clock = [1000.0]
    m = migrator_at(clock, poll_interval_s)
    assert pass_age_s(m) == 0.0  # a fresh migrator counts from its start
    clock[0] += since_pass_s
    assert stalled(m) is wedged


def test_a_pass_resets_the_age() -> None:
    clock = [0.0]
    m = migrator_at(clock, 1.0)
    clock[0] = 500.0
    assert stalled(m)
    m.stats.last_pass = clock[0]
    assert not stalled(m)
    assert pass_age_s(m) == 0.0
