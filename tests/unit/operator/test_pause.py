"""The wait between two ticks leaves nothing behind for the cyclic collector.

kopf's ``stopped.wait(n)`` left a task and a chained TimeoutError (tracebacks,
frames) in a reference cycle every time it ran out: at 1,000 JobQueues a fifth of
the operator's objects. The pause must free everything it made by reference
counting alone, so the count of such objects does not move with the collector off.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections import Counter

from jobqueue_operator.pacing import pause

KINDS = (BaseException, types.TracebackType, types.FrameType, asyncio.Task)


def census() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, KINDS))


async def test_a_pause_that_runs_out_leaves_no_exception_frame_or_task() -> None:
    await pause(0.001)  # the first call may cache what the event loop keeps anyway
    gc.collect()
    gc.disable()
    try:
        before = census()
        for _ in range(50):
            await pause(0.001)
        left = census() - before
    finally:
        gc.enable()
    assert not left, f"left for the cyclic collector after 50 pauses: {dict(left)}"


async def test_a_stopped_daemon_ends_its_pause_at_once() -> None:
    """kopf stops the daemon by cancelling it; the pause must not shield that."""
    waiting = asyncio.create_task(pause(60))
    await asyncio.sleep(0)
    waiting.cancel()
    done, _ = await asyncio.wait([waiting], timeout=1.0)
    assert waiting in done
    assert waiting.cancelled()
