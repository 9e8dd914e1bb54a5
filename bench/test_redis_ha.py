"""Unit tests of the Redis HA benchmark's pure parts (no Redis).

Run: ``.venv/bin/pytest bench/test_redis_ha.py -o addopts=""``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from bench import redis_ha
from bench.measure import percentile
from bench.sections import write_between
from jobqueue_protocol.keys import counters_key, ready_key


def test_ratio() -> None:
    assert redis_ha.ratio(50.0, 100.0) == 0.5
    assert redis_ha.ratio(None, 100.0) is None
    assert redis_ha.ratio(1.0, None) is None
    assert redis_ha.ratio(1.0, 0.0) is None


def test_split_within_twenty_percent() -> None:
    assert redis_ha.split_within({1: 100, 2: 100, 3: 100})
    assert redis_ha.split_within({1: 120, 2: 90, 3: 90})  # even 100: +20 % is still in
    assert not redis_ha.split_within({1: 125, 2: 90, 3: 85})
    assert not redis_ha.split_within({1: 0, 2: 0, 3: 0})
    assert not redis_ha.split_within({})
    assert redis_ha.split_shares({1: 1, 2: 3}) == {1: 0.25, 2: 0.75}
    assert redis_ha.split_shares({1: 0}) == {}


def test_ceiling_is_one_core_over_cpu_per_job() -> None:
    assert redis_ha.ceiling_jobs_per_s(50.0) == pytest.approx(20000.0)
    assert redis_ha.ceiling_jobs_per_s(None) is None
    assert redis_ha.ceiling_jobs_per_s(0.0) is None


def test_percentile_as_the_latency_rows_use_it() -> None:
    lat = [float(v) for v in range(1, 201)]
    assert percentile(lat, 50) == 100
    assert percentile(lat, 99) == 198


def test_pick_queues_one_per_master_and_the_keys_follow_the_tag() -> None:
    ranges = [(0, 5460, 7000), (5461, 10922, 7001), (10923, 16383, 7002)]
    chosen = redis_ha.pick_queues(ranges)
    assert sorted(chosen) == [7000, 7001, 7002]
    for port, queue in chosen.items():
        lo, hi = next((lo, hi) for lo, hi, p in ranges if p == port)
        for key in (counters_key(queue), ready_key(queue, 5)):
            assert lo <= key_slot(key.encode()) <= hi
    with pytest.raises(ValueError, match="no queue name"):
        redis_ha.pick_queues(ranges, tries=1)


def test_shard_windows() -> None:
    got = redis_ha.shard_windows(
        {7000: "a", 7001: "b"},
        {7000: (1.0, 10), 7001: (2.0, 5)},
        {7000: (1.5, 1010), 7001: (2.0, 5)},
    )
    assert [(w.port, w.jobs) for w in got] == [(7000, 1000), (7001, 0)]
    assert got[0].cpu_us_per_job == pytest.approx(500.0)
    assert got[1].cpu_us_per_job is None


def _row(label: str, base: str | None, summary: dict[str, Any] | None) -> dict[str, Any]:
    return {"label": label, "baseline": base, "queues": "q", "summary": summary, "problems": []}


def test_render_ratios_split_and_missing(tmp_path: Path) -> None:
    shards: list[dict[str, Any]] = [
        {
            "port": p,
            "queue": f"q{p}",
            "jobs": 100,
            "share": 1 / 3,
            "cpu_us_per_job": 50.0,
            "ceiling_jobs_per_s": redis_ha.ceiling_jobs_per_s(50.0),
        }
        for p in (1, 2, 3)
    ]
    results = {
        "meta": {
            "git": "abc1234",
            "date": "2026-01-01 00:00:00 UTC",
            "command": "python -m bench.redis_ha",
            "cores": 2,
            "cpu_model": "x",
            "load_start": "1 1 1",
            "jobs": 10,
            "latency_jobs": 5,
            "rate": 100.0,
            "trials": 1,
        },
        "rows": {
            "standalone3": _row("standalone", None, {"jobs_per_s_1": 1000.0, "p50_ms": 2.0}),
            "cluster": _row(
                "Cluster",
                "standalone3",
                {"jobs_per_s_1": 800.0, "p50_ms": 3.0, "shards1": shards, "split_ok1": True},
            ),
            "sentinel": _row("Sentinel", "standalone1", None),
        },
        "missing": {"Sentinel": "the topology did not start: boom"},
    }
    text = redis_ha.render(results)
    assert "| 800 (0.80×) |" in text
    assert "3.0 (1.50×)" in text
    assert "within ±20%" in text
    assert "20000–20000 jobs/s" in text
    assert "Not measured: Sentinel: the topology did not start: boom" in text
    out = tmp_path / "B.md"
    out.write_text("# B\n\n<!-- worker-bench:begin -->\nx\n<!-- worker-bench:end -->\n")
    write_between(out, redis_ha.BEGIN, redis_ha.END, text)
    written = out.read_text()
    assert "<!-- worker-bench:begin -->\nx\n" in written
    assert written.count(redis_ha.BEGIN) == 1


def test_summaries_from_saved_trials() -> None:
    def trial(rate: float, jobs: tuple[int, int, int]) -> dict[str, Any]:
        return {
            "drain1": {"jobs_per_s": rate, "redis_cpu_us_per_job": 90.0, "redis_cmds_per_job": 4},
            "latency": {"p50_ms": 2.0, "p99_ms": 9.0},
            "shards1": [
                {"port": p, "queue": f"q{p}", "jobs": j, "cpu_s": 0.0, "cpu_us_per_job": 30.0}
                for p, j in zip((1, 2, 3), jobs, strict=True)
            ],
        }

    results: dict[str, Any] = {
        "rows": {
            "cluster": {
                "key": "cluster",
                "label": "Cluster",
                "baseline": None,
                "queues": "3",
                "trials": [trial(900.0, (100, 100, 100)), trial(1100.0, (100, 100, 100))],
                "problems": [],
            },
            "sentinel": {
                "key": "sentinel",
                "label": "Sentinel",
                "baseline": None,
                "queues": "1",
                "trials": [],
                "problems": ["did not start"],
            },
        }
    }
    redis_ha.add_summaries(results)
    summary = results["rows"]["cluster"]["summary"]
    assert summary["jobs_per_s_1"] == 1000.0
    assert summary["jobs_per_s_3"] is None
    assert summary["split_ok1"] is True
    assert [s["ceiling_jobs_per_s"] for s in summary["shards1"]] == pytest.approx([1e6 / 30] * 3)
    assert results["rows"]["sentinel"]["summary"] is None
