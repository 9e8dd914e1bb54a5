"""Timeout and memory maths (pure): adaptive timeouts, statistics, sizes, cgroup limits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jobqueue_worker.memlimit import MemoryPolicy, cgroup_limit, default_policy, parse_bytes
from jobqueue_worker.timeouts import (
    AdaptiveConfig,
    History,
    adaptive_timeout,
    percentile,
    summarize,
    timeout_retry_delay,
)


@pytest.mark.parametrize(
    ("p", "expected"), [(50, 5), (95, 10), (99, 10), (10, 1), (0, 1), (100, 10)]
)
def test_nearest_rank_percentile(p: float, expected: float) -> None:
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p) == expected


def test_summary_statistics() -> None:
    s = summarize([float(x) for x in range(1, 101)])
    assert s is not None
    assert (s.count, s.min, s.max, s.mean, s.p50, s.p95, s.p99) == (100, 1, 100, 50.5, 50, 95, 99)
    assert summarize([]) is None


def test_adaptive_timeout_waits_for_enough_samples_and_respects_bounds() -> None:
    cfg = AdaptiveConfig(factor=3, min_s=1, max_s=60, min_samples=20)
    assert adaptive_timeout([0.1] * 19, cfg, None) is None
    assert adaptive_timeout([0.1] * 20, cfg, None) == 1  # 0.3 s raised to the minimum
    assert adaptive_timeout([100.0] * 20, cfg, None) == 60  # capped by the maximum
    assert adaptive_timeout([10.0] * 20, cfg, 12.0) == 12.0  # the configured ceiling wins
    assert adaptive_timeout([2.0] * 20, cfg, 12.0) == 6.0


def test_adaptive_timeout_converges_on_a_synthetic_history() -> None:
    """A type that gets slower: the timeout follows P95 × factor of the recent window."""
    rng = random.Random(4)
    cfg = AdaptiveConfig(factor=3, min_s=0.5, max_s=600, min_samples=50)
    h = History(window=500)
    seen = []
    for phase_mean in (1.0, 4.0):
        for _ in range(2000):
            h.add("render", max(0.01, rng.gauss(phase_mean, phase_mean / 10)))
            t = adaptive_timeout(h.durations("render"), cfg, None)
            if t is not None:
                seen.append(t)
        # P95 of N(m, m/10) is m × 1.1645; × 3 ⇒ 3.49 m
        final = adaptive_timeout(h.durations("render"), cfg, None)
        assert final is not None
        assert final == pytest.approx(3 * 1.1645 * phase_mean, rel=0.05)
    # it moved from the old regime to the new one, monotonically enough to be useful
    assert seen[0] < 4.5
    assert seen[-1] > 12


def test_a_timed_out_attempt_waits_longer_before_its_retry() -> None:
    assert timeout_retry_delay(2.0, 4.0) == 8.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("536870912", 536_870_912),
        ("512Mi", 512 * 1024**2),
        ("1G", 1_000_000_000),
        ("1Gi", 1024**3),
        ("1.5Gi", int(1.5 * 1024**3)),
        ("800M", 800_000_000),
        ("64k", 64_000),
        (" 2 gb ", 2_000_000_000),
        (4096, 4096),
    ],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "12XB", "-5Mi", "0", "1.2.3G", "Mi"])
def test_parse_bytes_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match=r"size"):
        parse_bytes(bad)


def test_cgroup_v2_then_v1_then_none(tmp_path: Path) -> None:
    assert cgroup_limit(tmp_path) is None
    v1 = tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes"
    v1.parent.mkdir(parents=True)
    v1.write_text("9223372036854771712\n")  # v1 "unlimited"
    assert cgroup_limit(tmp_path) is None
    v1.write_text("268435456\n")
    assert cgroup_limit(tmp_path) == 268_435_456
    v2 = tmp_path / "sys/fs/cgroup/memory.max"
    v2.write_text("max\n")
    assert cgroup_limit(tmp_path) is None  # v2 present and unlimited
    v2.write_text("536870912\n")
    assert cgroup_limit(tmp_path) == 536_870_912


def test_memory_policy() -> None:
    pol = default_policy(None, None, 1000)
    assert (pol.soft, pol.hard) == (720, 900)
    assert default_policy(100, 200, 1000) == MemoryPolicy(100, 200)
    assert default_policy(None, None, None) == MemoryPolicy(None, None)
    assert [pol.state(x) for x in (0, 720, 899, 900)] == ["ok", "soft", "soft", "hard"]
    assert pol.fits(rss=500, reserved=100, expected=300)
    assert not pol.fits(rss=500, reserved=100, expected=301)
    assert MemoryPolicy().fits(10**12, 10**12, 10**12)
