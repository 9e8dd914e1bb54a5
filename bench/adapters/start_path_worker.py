"""Handlers for ``python -m bench.start_path``: one no-op type, plus two probes.

The worker's wait (``StepConnection.call_after_wait``, the BLPOP and the step in one
write) is wrapped to note when its reply has been read, and the handler notes when it
starts; the collector's pauses are noted too. One line per event in ``START_PATH_OUT``:
``R <time>`` (reply read), ``S <time> <enqueue stamp>`` (handler start), ``G <generation>
<pause ms>``. Wall-clock times, as the latency row measures them.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from jobqueue_worker.broker import stepconn
from jobqueue_worker.registry import Job, Registry

registry = Registry()
_out = open(os.environ["START_PATH_OUT"], "a", buffering=1)  # noqa: SIM115 - the process's life
_wait = stepconn.StepConnection.call_after_wait


async def _noted_wait(self: stepconn.StepConnection, *args: Any, **kwargs: Any) -> Any:
    reply = await _wait(self, *args, **kwargs)
    _out.write(f"R {time.time():.6f}\n")
    return reply


stepconn.StepConnection.call_after_wait = _noted_wait  # type: ignore[method-assign]
_gc_started: list[float] = []


def _gc_pause(phase: str, info: dict[str, Any]) -> None:
    # No write here: a collection can start inside a write to the same file.
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        _pauses.append((info["generation"], (time.perf_counter() - _gc_started.pop()) * 1000))


_pauses: list[tuple[int, float]] = []
gc.callbacks.append(_gc_pause)


@registry.job_type("noop")
async def noop(job: Job) -> None:
    started = time.time()
    payload = job.payload if isinstance(job.payload, dict) else {}
    while _pauses:
        generation, ms = _pauses.pop()
        _out.write(f"G {generation} {ms:.3f}\n")
    _out.write(f"S {started:.6f} {float(payload.get('enq', 0.0)):.6f}\n")  # type: ignore[arg-type]
