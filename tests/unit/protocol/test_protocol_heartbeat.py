"""The heartbeat format both sides read: what the worker sends is what the operator gets."""

from __future__ import annotations

import json

from jobqueue_protocol.stats import ActiveJob, WorkerHeartbeat, heartbeat_json


def beat(cpu: float | None) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id="w-1",
        state="busy",
        seen_at=0.0,
        active_jobs=1,
        jobs=(ActiveJob(id="j1", type="send", started_at=12.5),),
        started_at=10.0,
        rss_bytes=1 << 20,
        processed=7,
        failed=1,
        mean_processing_s=0.25,
        pod_name="worker-abc",
        cpu_cores=cpu,
        concurrency=10,
        version="1.2.3",
    )


def stored(hb: WorkerHeartbeat) -> str:
    """What the heartbeat script stores: the JSON with seen_at (Redis TIME) added."""
    data = json.loads(heartbeat_json(hb))
    return json.dumps({"seen_at": 99.0, **data})


def test_round_trip_keeps_every_field_including_cpu() -> None:
    sent = beat(0.75)
    got = WorkerHeartbeat.from_json(stored(sent))
    assert got is not None
    assert got == WorkerHeartbeat(**{**sent.__dict__, "seen_at": 99.0})


def test_a_worker_that_does_not_report_cpu_reads_as_unknown_not_idle() -> None:
    data = json.loads(stored(beat(None)))
    del data["cpu_cores"]
    got = WorkerHeartbeat.from_json(json.dumps(data))
    assert got is not None
    assert got.cpu_cores is None


def test_malformed_cpu_makes_the_entry_unreadable_not_the_others() -> None:
    data = json.loads(stored(beat(0.5)))
    data["cpu_cores"] = "lots"
    assert WorkerHeartbeat.from_json(json.dumps(data)) is None
