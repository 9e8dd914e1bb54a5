"""A rate limiter handlers use directly: ``async with limiter: call_the_api()``.

Same Redis algorithms as the fetch-time limits (``ratelimit_lib.lua``), under the
limiter's own global keys (``keys.named_limiter_key``), so every worker process
shares it. Entering waits (asyncio sleep, never a busy loop) until every limit
admits, up to ``max_wait_s``; past that it raises ``RateLimited``, which the
handler may turn into ``Retry(delay_s=exc.retry_after_s)``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import TracebackType

from jobqueue_protocol import keys
from jobqueue_worker.broker import Broker
from jobqueue_worker.ratelimit import RateLimit, parse_limits


class RateLimited(Exception):  # noqa: N818 - a state, like Retry
    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"rate limit {name!r}: retry in {retry_after_s:.3f} s")
        self.retry_after_s = retry_after_s


class RateLimiter:
    def __init__(
        self,
        broker: Broker,
        name: str,
        limits: str | tuple[RateLimit, ...],
        *,
        max_wait_s: float = 30.0,
    ) -> None:
        self.broker = broker
        self.name = keys.validate_name(name, "limiter name")
        self.limits = parse_limits(limits) if isinstance(limits, str) else limits
        self.keys = [keys.named_limiter_key(name, lim.label) for lim in self.limits]
        self.max_wait_s = max_wait_s

    async def try_acquire(self) -> float:
        """One attempt: 0.0 if admitted, else the seconds to wait."""
        retry_ms = await self.broker.acquire_limit(self.keys, self.limits, uuid.uuid4().hex)
        return retry_ms / 1000.0

    async def acquire(self) -> None:
        deadline = time.monotonic() + self.max_wait_s
        while True:
            wait = await self.try_acquire()
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise RateLimited(self.name, wait)
            await asyncio.sleep(wait)

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
