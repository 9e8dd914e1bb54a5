"""The CPU the worker reports in its heartbeat (the operator's CPU trigger reads it)."""

from __future__ import annotations

import time

from jobqueue_worker.identity import CpuMeter


def test_first_sample_is_unknown_then_busy_time_shows() -> None:
    meter = CpuMeter()
    assert meter.sample() is None
    started_wall, started_cpu = time.monotonic(), time.process_time()
    while time.process_time() < started_cpu + 0.3:  # burn ~0.3 s of CPU on this thread
        pass
    busy = meter.sample()
    # On a loaded machine the burn takes longer than 0.3 s of wall time, so the
    # expected share of a core is what this thread really got, not 1.0.
    got = (time.process_time() - started_cpu) / (time.monotonic() - started_wall)
    assert busy is not None
    assert busy > 0.5 * got


def test_an_idle_interval_reads_near_zero() -> None:
    meter = CpuMeter()
    meter.sample()
    time.sleep(0.3)
    idle = meter.sample()
    assert idle is not None
    assert idle < 0.5
