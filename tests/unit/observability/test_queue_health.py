"""``queue_health``: a table of snapshots and the verdict each must get."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobqueue_protocol.health import Level, Thresholds, queue_health, worst
from jobqueue_protocol.stats import QueueStats, WorkerHeartbeat

NOW = 1_800_000_000.0


def _worker(state: str = "idle", wid: str = "w1") -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=wid,
        state=state,
        seen_at=NOW,
        active_jobs=0,
        jobs=(),
        started_at=NOW - 60,
        rss_bytes=50_000_000,
        processed=0,
        failed=0,
        mean_processing_s=0.0,
        pod_name=None,
    )


def _stats(
    waiting: int = 0,
    *,
    age_s: float | None = None,
    dead: int = 0,
    workers: tuple[WorkerHeartbeat, ...] = (),
    due: int = 0,
) -> QueueStats:
    return QueueStats(
        queue="q",
        waiting_by_priority={5: waiting},
        waiting=waiting,
        delayed=due,
        in_flight=0,
        dead=dead,
        oldest_ready_at=None if age_s is None else NOW - age_s,
        workers=workers,
        counters={},
        server_time=NOW,
        delayed_due=due,
    )


W = (_worker(),)

CASES = [
    # (id, stats, level, reason codes)
    ("empty, no workers: scaled to zero on purpose", _stats(), Level.HEALTHY, []),
    ("199 waiting", _stats(199, age_s=10, workers=W), Level.HEALTHY, []),
    ("200 waiting: warning", _stats(200, age_s=10, workers=W), Level.WARNING, ["depth"]),
    ("499 waiting", _stats(499, age_s=10, workers=W), Level.WARNING, ["depth"]),
    ("500 waiting: critical", _stats(500, age_s=10, workers=W), Level.CRITICAL, ["depth"]),
    ("due delayed count as waiting", _stats(150, due=50, workers=W), Level.WARNING, ["depth"]),
    ("oldest 299 s", _stats(1, age_s=299, workers=W), Level.HEALTHY, []),
    ("oldest 300 s", _stats(1, age_s=300, workers=W), Level.WARNING, ["oldest_age"]),
    ("oldest 900 s", _stats(1, age_s=900, workers=W), Level.CRITICAL, ["oldest_age"]),
    ("one dead letter", _stats(dead=1, workers=W), Level.WARNING, ["dead_letters"]),
    ("1000 dead letters", _stats(dead=1000, workers=W), Level.CRITICAL, ["dead_letters"]),
    ("jobs wait, nobody alive", _stats(3, age_s=1), Level.CRITICAL, ["no_workers"]),
    ("due delayed, nobody alive", _stats(0, due=2), Level.CRITICAL, ["no_workers"]),
    (
        "jobs wait, every worker draining",
        _stats(3, age_s=1, workers=(_worker("draining"), _worker("draining", "w2"))),
        Level.WARNING,
        ["all_draining"],
    ),
    (
        "one draining, one busy",
        _stats(3, age_s=1, workers=(_worker("draining"), _worker("busy", "w2"))),
        Level.HEALTHY,
        [],
    ),
    (
        "several reasons, worst wins and all are listed",
        _stats(600, age_s=400, dead=5),
        Level.CRITICAL,
        ["depth", "oldest_age", "dead_letters", "no_workers"],
    ),
]


@pytest.mark.parametrize(
    ("stats", "level", "codes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_queue_health_table(stats: QueueStats, level: Level, codes: list[str]) -> None:
    health = queue_health(stats)
    assert health.level is level
    assert [r.code for r in health.reasons] == codes
    assert health.healthy is (level is Level.HEALTHY)
    assert health.queue == "q"


def test_reasons_say_the_number_and_the_threshold() -> None:
    (reason,) = queue_health(_stats(512, age_s=1, workers=W)).reasons
    assert reason.message == "512 jobs waiting (>= 500)"


def test_custom_thresholds_apply() -> None:
    t = Thresholds(depth_warning=5, depth_critical=10)
    assert queue_health(_stats(5, workers=W), t).level is Level.WARNING
    assert queue_health(_stats(10, workers=W), t).level is Level.CRITICAL
    assert queue_health(_stats(4, workers=W), t).level is Level.HEALTHY


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth_warning": 10, "depth_critical": 5},
        {"oldest_age_warning_s": -1},
        {"dead_critical": 0},
    ],
)
def test_inconsistent_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="warning <= critical"):
        Thresholds(**kwargs)  # type: ignore[arg-type]


def test_worst() -> None:
    assert worst([]) is Level.HEALTHY
    assert worst([Level.WARNING, Level.HEALTHY]) is Level.WARNING
    assert worst([Level.WARNING, Level.CRITICAL, Level.HEALTHY]) is Level.CRITICAL


def test_the_verdict_does_not_depend_on_anything_but_the_snapshot() -> None:
    stats = _stats(250, age_s=20, workers=W)
    assert queue_health(stats) == queue_health(replace(stats))
