"""How a JobQueue's loop paces its polls: when the next one starts, and the wait
until then. Nothing here talks to Kubernetes or Redis.
"""

from __future__ import annotations

import asyncio


async def pause(seconds: float) -> None:
    """The wait between two ticks. A stop ends it: kopf cancels the daemon
    (``cancellation_timeout`` without a backoff) right after raising ``stopped``.

    Not kopf's ``stopped.wait(seconds)``: every wait that runs out starts a task and
    raises a TimeoutError chained to a CancelledError; the traceback holds the waiting
    frame, the frame the task, the task the exception: a cycle that only a full
    collection frees. At 1,000 JobQueues up to 12,800 of those exceptions, with
    their tracebacks, frames and tasks (over 100,000 objects, a fifth of the
    operator's), waited for a full collection at any moment, and their churn grew
    the heap between full collections. A plain sleep leaves nothing behind.
    """
    await asyncio.sleep(seconds)


#: The least pause between two polls of a JobQueue, as a share of its interval:
#: a tick that overran its interval is followed by a short breath, not at once.
MIN_PAUSE_SHARE = 0.1


def next_poll_in(interval: float, tick_took: float) -> float:
    """Seconds until the next poll: the interval counts from the start of the tick,
    so the tick's own time (a slow API server, a long shared read) does not
    stretch every JobQueue's period."""
    return max(interval * MIN_PAUSE_SHARE, interval - tick_took)


def lateness(due: float | None, started: float) -> float | None:
    """How long after it was due a poll started (0 when on time); ``None`` for a
    loop's first poll, which nothing scheduled. A poll is due an interval after the
    start of the one before, so a tick that overran its interval makes the next late
    as well as a loop that woke late: both are the operator falling behind."""
    if due is None:
        return None
    return max(0.0, started - due)
