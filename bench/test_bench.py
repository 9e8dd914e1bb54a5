"""Unit tests for the harness's pure parts (no Redis, no peers).

Run: ``.venv/bin/pytest bench/test_bench.py -q -p no:cacheprovider``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import ceiling, report
from bench.measure import RECORD_SIZE, percentile, records, summarize_raw
from bench.redis_server import RedisSnapshot, delta


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_records_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "r"
    line = f"{1700000000.123456:20.6f}{1699999999.5:19.6f}{'w2':>4}\n".encode()
    assert len(line) == RECORD_SIZE
    out.write_bytes(line * 3)
    rows = records(out)
    assert len(rows) == 3
    start, enq, tag = rows[0]
    assert start == pytest.approx(1700000000.123456)
    assert enq == pytest.approx(1699999999.5)
    assert tag == "w2"


def test_delta_drops_harness_commands_and_reads() -> None:
    a = RedisSnapshot(commands={"info": 1, "evalsha": 10}, reads=100, cpu_s=1.0)
    b = RedisSnapshot(commands={"info": 5, "evalsha": 30, "zadd": 4}, reads=130, cpu_s=1.5)
    cmds, reads, cpu = delta(a, b, harness_reads=3)
    assert cmds == {"evalsha": 20, "zadd": 4}
    assert reads == 130 - 100 - 1 - 3
    assert cpu == pytest.approx(0.5)


def test_summarize_raw(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "main (x.py:1);run (jobqueue_worker/runtime.py:10);send (redis/conn.py:5) 6\n"
        "main (x.py:1);select (selectors.py:468) 4\n"
    )
    total, self_top, incl, cats = summarize_raw(raw)
    assert total == 10
    assert self_top[0] == ("send (redis/conn.py:5)", 0.6)
    assert incl == [("run (jobqueue_worker/runtime.py:10)", 0.6)]
    assert dict(cats)["redis-py / hiredis client"] == 0.6


def test_job_bound() -> None:
    rows: list[dict[str, object]] = [
        {"test": "PING", "config": "10 conns", "rps": 100000.0},
        {"test": "PING", "config": "1 conn", "rps": 10000.0},
    ]
    p16 = "10 conns, pipeline 16"
    for test in ("EVALSHA small (1 call)", "ZADD", "HSET", "ZPOPMIN", "LPUSH", "RPOP"):
        rows.append({"test": test, "config": p16, "rps": 500000.0})
    mix = {"evalsha": 1.0, "zadd": 2.0}
    bound, unmapped = ceiling.job_bound(rows, mix, 0.5, "10 conns")
    assert bound == pytest.approx(1 / (0.5 / 100000 + 3 / 500000))
    assert unmapped == []
    slow, _ = ceiling.job_bound(rows, mix, 0.5, "1 conn")
    assert slow is not None
    assert bound is not None
    assert slow < bound
    _, unmapped = ceiling.job_bound(rows, {"weird": 1.0}, 1.0, "10 conns")
    assert unmapped == ["weird"]


def _system(j1: float, p99: float, cpu: float) -> dict[str, Any]:
    return {
        "status": "works",
        "settings": "s",
        "summary": {
            "jobs_per_s_1": j1,
            "jobs_per_s_2": j1 * 1.5,
            "enqueue_jobs_per_s": 1000.0,
            "p50_ms": p99 / 2,
            "p99_ms": p99,
            "worker_cpu_us_per_job": cpu,
            "redis_cmds_per_job": 3.0,
            "redis_reads_per_job": 1.0,
            "redis_cpu_us_per_job": 20.0,
            "commands": {"evalsha": 1.0},
        },
    }


def test_ratios_and_render() -> None:
    systems = {
        "ours": _system(4000, 2.0, 80),
        "taskiq-list": _system(2000, 1.0, 400),
        "bullmq": _system(3000, 4.0, 200),
        # The bare hand-off is faster than everyone by design: a yardstick, never the best.
        "floor": _system(9000, 0.3, 10),
    }
    rat = report.ratios(systems)
    ratio, best = rat["jobs_per_s_1"]
    assert ratio == pytest.approx(4000 / 3000)
    assert best == "bullmq"
    assert rat["p99_ms"] == (2.0, "taskiq-list")
    assert rat["worker_cpu_us_per_job"] == (0.4, "bullmq")
    assert report.ratios(systems, {"bullmq"})["p99_ms"] == (0.5, "bullmq")
    res = {
        "meta": {
            "date": "d",
            "command": "c",
            "cores": 2,
            "cpu_model": "cpu",
            "memory_gib": 1.0,
            "os": "os",
            "python": "3.11",
            "load_start": "0",
            "redis_version": "7",
            "redis_port": 1,
            "redis_args": "--save ''",
            "jobs": 300,
            "latency_jobs": 100,
            "rate": 100.0,
            "trials": 1,
            "quick": True,
        },
        "systems": systems,
        "notes": ["n"],
    }
    text = report.render(res, lambda k: k, {"bullmq"})
    assert "Small-sample `--quick` run" in text
    assert "**ours / best peer**" in text
    one_process = "| 1 worker process ≥ 1.0× BullMQ (no-op, concurrency 10) |"
    assert f"{one_process} 4,000 vs 3,000 jobs/s: 1.33× | met |" in text
    two_processes = "| 2 worker processes ≥ 1.5× BullMQ with two |"
    assert f"{two_processes} 6,000 vs 4,500 jobs/s: 1.33× | **not met** |" in text
    assert "| worker CPU ≤ 60 µs per job | 80 µs | **not met** |" in text
    assert "| Redis CPU ≤ 30 µs per job | 20.0 µs | met |" in text
    assert "1.00 / 2.00 ms (here, p50 / p99 of the bare list hand-off: 0.15 / 0.30 ms)" in text
    assert "a lone round trip" not in text  # no ceiling run to cite
    res["ceiling"] = {
        "requests": 10,
        "rows": [
            {"test": "PING", "config": "1 conn", "clients": 1, "pipeline": 1, "rps": 10_000.0}
        ],
        "paced": {"n": 500.0, "rate": 100.0, "p50_ms": 0.45, "p99_ms": 0.8},
    }
    text = report.render(res, lambda k: k, {"bullmq"})
    assert "of the bare list hand-off: 0.15 / 0.30; of a lone round trip: 0.45 / 0.80 ms" in text
    assert "p50 0.450 ms, p99 0.800 ms. Back-to-back PINGs cost 0.100 ms each" in text


def test_write_section_keeps_the_operator_block(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    op = f"{report.OPERATOR_BEGIN}\n## Operator\nnumbers\n{report.OPERATOR_END}"
    path.write_text("# old unmarked worker text\n\n" + op + "\n")
    report.write_section(path, "# Benchmarks\nfirst")
    text = path.read_text()
    assert text.startswith(report.BEGIN + "\n# Benchmarks\nfirst\n" + report.END)
    assert op in text
    assert "old unmarked" not in text
    report.write_section(path, "# Benchmarks\nsecond")
    text = path.read_text()
    assert "second" in text
    assert "first" not in text
    assert op in text
    new = tmp_path / "new.md"
    report.write_section(new, "x")
    assert new.read_text() == f"{report.BEGIN}\nx\n{report.END}\n"


def test_soak_slope_skips_the_warm_up_and_sees_a_steady_rise() -> None:
    from bench.soak import slope_mib_per_min

    mib = 2**20
    # A jump during the warm-up (imports, arenas), then 2 MiB a minute.
    leaking = [
        (float(t), (10 if t < 60 else 40) * mib + t * 2 * mib // 60) for t in range(0, 600, 2)
    ]
    assert slope_mib_per_min(leaking, after_s=60) == pytest.approx(2.0)
    flat = [(float(t), (10 if t < 60 else 40) * mib + (t % 4) * 1024) for t in range(0, 600, 2)]
    assert abs(slope_mib_per_min(flat, after_s=60)) < 0.01
    # Without the cut the warm-up's jump would read as growth.
    assert slope_mib_per_min(flat, after_s=0) > 1


def test_operator_rss_slope_uses_the_sample_times() -> None:
    from bench.operator.scale import rss_slope_mib_per_min

    mib = 2**20
    # Uneven spacing: a slope from sample indices would be wrong here.
    assert rss_slope_mib_per_min([0.0, 1.0, 60.0], [0, mib // 60, mib]) == pytest.approx(1.0)
    assert rss_slope_mib_per_min([0.0, 1.0], [0, mib]) is None


def test_operator_rss_second_half_sees_growth_that_stopped() -> None:
    from bench.operator.scale import rss_slope_mib_per_min, second_half

    mib = 2**20
    # 20 MiB of growth in the first five minutes, then flat for five.
    times = [float(t) for t in range(0, 600, 2)]
    samples = [(100 + 20 * min(t, 300) / 300) * mib for t in times]
    rss = [int(s) for s in samples]
    assert rss_slope_mib_per_min(times, rss) > 1  # the whole window reads as growth
    half_times, half_rss = second_half(times, rss)
    assert half_times[0] >= 299
    assert rss_slope_mib_per_min(half_times, half_rss) == pytest.approx(0.0, abs=0.01)
    assert second_half([], []) == ([], [])


def test_a_no_write_operator_run_keeps_its_results_beside_the_saved_ones() -> None:
    from datetime import UTC, datetime

    from bench.operator.__main__ import RESULTS, results_path

    now = datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC)
    assert results_path(False, now) == RESULTS
    side = results_path(True, now)
    assert side != RESULTS
    assert side.parent == RESULTS.parent
    assert side.name == "operator-20261207T010203Z.json"


def test_a_saved_run_added_later_replaces_its_scale_points_and_names_both_runs() -> None:
    from bench.operator.__main__ import added

    def point(n: int, cores: float) -> dict[str, object]:
        return {"jobqueues": n, "cpu_cores": cores}

    previous = {
        "meta": {"date": "day 1", "command": "first", "git": "aaa"},
        "reaction": {"5": "r5"},
        "cost": {"5": "c5"},
        "scale": [point(1, 0.1), point(1000, 0.2), point(10000, 0.3)],
        "skipped": [],
    }
    run = {
        "meta": {"date": "day 2", "command": "second", "git": "bbb"},
        "reaction": {},
        "cost": {},
        "scale": [point(10000, 0.9), point(3000, 0.5)],
        "skipped": ["x"],
    }
    merged = added(previous, run)
    assert [(p["jobqueues"], p["cpu_cores"]) for p in merged["scale"]] == [
        (1, 0.1),
        (1000, 0.2),
        (3000, 0.5),
        (10000, 0.9),
    ]
    assert merged["meta"]["git"] == "bbb"
    assert merged["meta"]["date"] == "day 1 and day 2"
    assert merged["meta"]["earlier_runs"] == [previous["meta"]]
    assert merged["reaction"] == {"5": "r5"}
    assert merged["skipped"] == ["x"]
    assert previous["scale"][2]["cpu_cores"] == 0.3, "the saved results are not changed in place"


def test_the_status_write_series_are_read_and_differenced() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from bench.operator import cost, probes

    text = (
        "jobqueue_operator_status_writes_pending 40.0\n"
        "jobqueue_operator_status_write_delay_seconds_count 100.0\n"
        "jobqueue_operator_status_write_delay_seconds_sum 250.0\n"
        "jobqueue_operator_status_writes_superseded_total 7.0\n"
    )
    families = list(text_string_to_metric_families(text))
    before = probes.status_writes_from(families)
    assert before == probes.StatusWrites(pending=40, written=100, delay_seconds=250, superseded=7)
    after = probes.StatusWrites(pending=5, written=300, delay_seconds=350, superseded=9)
    delta = cost.status_writes_delta(before, after)
    assert delta == {"written": 200, "mean_delay_s": 0.5, "superseded": 2, "pending_at_end": 5}
    assert cost.status_writes_delta(None, after) is None
    assert probes.status_writes_from([]) is None, "an operator without the series"


def test_poll_lateness_is_read_and_differenced_over_the_window() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from bench.operator import cost, probes

    def scrape(on_time: int, late_1s: int, late_5s: int, total_s: float) -> str:
        n = on_time + late_1s + late_5s
        return (
            f'jobqueue_operator_poll_lateness_seconds_bucket{{le="0.5"}} {on_time}\n'
            f'jobqueue_operator_poll_lateness_seconds_bucket{{le="1.0"}} {on_time}\n'
            f'jobqueue_operator_poll_lateness_seconds_bucket{{le="2.5"}} {on_time + late_1s}\n'
            f'jobqueue_operator_poll_lateness_seconds_bucket{{le="+Inf"}} {n}\n'
            f"jobqueue_operator_poll_lateness_seconds_count {n}\n"
            f"jobqueue_operator_poll_lateness_seconds_sum {total_s}\n"
        )

    def read(text: str) -> probes.PollLateness | None:
        return probes.lateness_from(list(text_string_to_metric_families(text)))

    before = read(scrape(100, 50, 0, 90.0))
    # The window: 900 on time, 90 between 1 and 2.5 s late, 10 later than that.
    after = read(scrape(1000, 140, 10, 90.0 + 230.0))
    delta = cost.lateness_delta(before, after)
    assert delta is not None
    assert delta["polls"] == 1000
    assert delta["mean_s"] == pytest.approx(0.23)
    assert delta["share_late"] == pytest.approx(0.1)
    assert delta["p99_at_most_s"] == 2.5, "990 of 1000 are within 2.5 s"
    assert cost.lateness_delta(None, after) is None
    assert read("jobqueue_operator_up 1\n") is None, "an operator without the histogram"


def test_a_restarted_watch_is_reported_by_how_long_it_ran_not_as_a_latency() -> None:
    from bench.operator import report as operator_report

    watch = operator_report._kind("WATCH jobqueues", 0.0001, 425.3)
    assert watch == "WATCH jobqueues 0.00 (restarted; had run 425 s)"
    patch = operator_report._kind("PATCH jobqueues/status", 0.165, 0.0353)
    assert patch == "PATCH jobqueues/status 0.17 (35.3 ms)"


def test_start_path_cuts_each_start_at_the_write_and_the_reply(tmp_path: Path) -> None:
    from bench.start_path import segments

    producer = tmp_path / "p.txt"
    producer.write_text("P 100.000000 100.000200\nP 200.000000 200.000300\nP 300.000000 300.0001\n")
    worker = tmp_path / "w.txt"
    worker.write_text(
        "R 100.000700\nG 0 0.125\nS 100.000800 100.000000\n"
        # The third job's only reply was read before its write: it came with an ack's
        # step, so it has a start latency but no segments.
        "R 200.001000\nS 200.001500 200.000000\nS 300.000900 300.000000\n"
    )
    seg, pauses = segments(producer, worker)
    assert seg["producer"] == pytest.approx([0.2, 0.3], abs=1e-3)
    assert seg["Redis and the wake-ups"] == pytest.approx([0.5, 0.7], abs=1e-3)
    assert seg["worker"] == pytest.approx([0.1, 0.5], abs=1e-3)
    assert seg["start latency"] == pytest.approx([0.8, 1.5, 0.9], abs=1e-3)
    assert pauses == ["gen0 0.125 ms"]
