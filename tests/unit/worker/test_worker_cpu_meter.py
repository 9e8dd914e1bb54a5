"""The CPU the worker reports in its heartbeat (the operator's CPU trigger reads it)."""

from __future__ import annotations

import time

from jobqueue_worker.identity import CpuMeter


def test_first_sample_is_unknown_then_busy_time_shows() -> None:
    meter = CpuMeter()
    assert meter.sample() is None
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn ~0.3 s of CPU on this thread
        pass
    busy = meter.sample()
    assert busy is not None
    assert busy > 0.2


def test_an_idle_interval_reads_near_zero() -> None:
    meter = CpuMeter()
    meter.sample()
    time.sleep(0.3)
    idle = meter.sample()
    assert idle is not None
    assert idle < 0.5
