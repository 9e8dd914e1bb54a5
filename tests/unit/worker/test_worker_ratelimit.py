"""Rate-limit maths (the specification the Lua mirrors): parsing tables and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_devkit.ratecheck import max_in_any_window
from jobqueue_worker.ratelimit import (
    Decision,
    RateLimit,
    Simulated,
    combine,
    fixed_check,
    gcra_admit,
    gcra_check,
    parse_limits,
    sliding_check,
    try_acquire,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300/minute", (RateLimit(300, 60_000),)),
        (
            "300/minute,10000/hour,100000/day",
            (RateLimit(300, 60_000), RateLimit(10_000, 3_600_000), RateLimit(100_000, 86_400_000)),
        ),
        ("5/second:bucket", (RateLimit(5, 1_000, "bucket"),)),
        ("5/second:bucket:20", (RateLimit(5, 1_000, "bucket", 20),)),
        ("10/30s:fixed", (RateLimit(10, 30_000, "fixed"),)),
        (" 2 / h ", (RateLimit(2, 3_600_000),)),
        ("1/d:sliding", (RateLimit(1, 86_400_000),)),
    ],
)
def test_parse_limits(text: str, expected: tuple[RateLimit, ...]) -> None:
    assert parse_limits(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "300",
        "300/fortnight",
        "0/minute",
        "-1/minute",
        "3/minute:leaky",
        "3/minute:fixed:5",
        "3/minute:bucket:0",
        "3/0s",
        "300/minute,300/minute",
        "abc/minute",
        "3/minute;4/hour",
    ],
)
def test_parse_limits_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match=r"expected|must|only|twice|not a limit"):
        parse_limits(bad)


SLIDING_3_PER_S = RateLimit(3, 1000)


@pytest.mark.parametrize(
    ("log", "now", "expected"),
    [
        ([], 0, Decision(True, 0)),
        ([0, 10], 20, Decision(True, 0)),
        ([0, 10, 20], 30, Decision(False, 970)),  # the oldest (0) leaves at 1000
        ([0, 10, 20], 1000, Decision(True, 0)),  # (0, 1000]: 0 is out
        ([0, 10, 20], 999, Decision(False, 1)),
        ([500, 10, 20, 900], 1005, Decision(False, 15)),  # 4 live: 10 and 20 must leave
    ],
)
def test_sliding_window_table(log: list[int], now: int, expected: Decision) -> None:
    assert sliding_check(log, now, SLIDING_3_PER_S) == expected


def test_gcra_allows_the_burst_then_one_per_emission_interval() -> None:
    lim = RateLimit(10, 1000, "bucket", 4)  # 4 at once, then one per 100 ms
    tat = None
    for _ in range(4):
        assert gcra_check(tat, 0, lim).allowed
        tat = gcra_admit(tat, 0, lim)
    assert gcra_check(tat, 0, lim) == Decision(False, 100)
    assert gcra_check(tat, 99, lim) == Decision(False, 1)
    assert gcra_check(tat, 100, lim).allowed


@pytest.mark.parametrize(
    ("count", "ttl", "expected"),
    [(0, 0, True), (4, 500, True), (5, 500, False), (5, 0, True), (9, -2, True)],
)
def test_fixed_window_table(count: int, ttl: int, expected: bool) -> None:
    d = fixed_check(count, ttl, 0, RateLimit(5, 1000, "fixed"))
    assert d.allowed is expected
    assert d.retry_ms == (0 if expected else ttl)


def test_several_limits_wait_for_the_slowest() -> None:
    assert combine([Decision(True, 0), Decision(False, 5), Decision(False, 50)]) == Decision(
        False, 50
    )
    assert combine([Decision(True, 0), Decision(True, 0)]).allowed


def test_max_in_any_window() -> None:
    assert max_in_any_window([0, 999, 1000, 1001, 1998], 1000) == 4
    assert max_in_any_window([0, 1000, 2000], 1000) == 1
    assert max_in_any_window([], 1000) == 0


times = st.lists(st.integers(0, 20_000), min_size=1, max_size=300).map(sorted)


@settings(max_examples=200, deadline=None)
@given(times, st.integers(1, 20), st.sampled_from([100, 1000, 5000]))
def test_sliding_never_exceeds_its_limit_in_any_window(
    requests: list[int], n: int, period: int
) -> None:
    lim = RateLimit(n, period)
    sim = [Simulated.new(lim)]
    admitted = [t for t in requests if try_acquire(sim, t).allowed]
    assert max_in_any_window(admitted, period) <= n
    # and it is not stricter than needed: a denied request really had n in its window
    for t in requests:
        if t not in admitted:
            assert sum(1 for a in admitted if t - period < a <= t) >= n


@settings(max_examples=200, deadline=None)
@given(times, st.integers(1, 20), st.integers(0, 30), st.sampled_from([100, 1000]))
def test_token_bucket_bounds_any_interval_by_burst_plus_rate(
    requests: list[int], n: int, burst: int, period: int
) -> None:
    lim = RateLimit(n, period, "bucket", burst)
    sim = [Simulated.new(lim)]
    admitted = [t for t in requests if try_acquire(sim, t).allowed]
    t_ms = period / n
    for i, a in enumerate(admitted):
        for b in admitted[i:]:
            # in [a, b]: at most the burst plus what the rate refills meanwhile
            assert sum(1 for x in admitted if a <= x <= b) <= lim.capacity + (b - a) / t_ms + 1e-9


@settings(max_examples=200, deadline=None)
@given(times, st.integers(1, 20), st.sampled_from([100, 1000]))
def test_fixed_window_admits_at_most_twice_the_limit_across_an_edge(
    requests: list[int], n: int, period: int
) -> None:
    sim = [Simulated.new(RateLimit(n, period, "fixed"))]
    admitted = [t for t in requests if try_acquire(sim, t).allowed]
    assert max_in_any_window(admitted, period) <= 2 * n


@settings(max_examples=100, deadline=None)
@given(times)
def test_several_limits_hold_together(requests: list[int]) -> None:
    lims = [RateLimit(3, 100), RateLimit(5, 1000), RateLimit(2, 50, "bucket")]
    sims = [Simulated.new(lim) for lim in lims]
    admitted = [t for t in requests if try_acquire(sims, t).allowed]
    assert max_in_any_window(admitted, 100) <= 3
    assert max_in_any_window(admitted, 1000) <= 5
