"""Polling with a deadline, for tests that wait on a real control plane or Redis.

Controllers act asynchronously, so tests poll for the state they expect; every
wait has a deadline and fails with the last value seen, never hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class NotReachedError(AssertionError):
    """The awaited condition did not hold in time; the message carries the last value."""


async def eventually(
    check: Callable[[], Awaitable[T]], timeout_s: float = 30.0, interval_s: float = 0.2
) -> T:
    """Poll `check` until it returns a truthy value, and return that value."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise NotReachedError(f"condition not met within {timeout_s}s; last value: {last!r}")
