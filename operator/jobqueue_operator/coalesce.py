"""One read for many JobQueues: the polls that meet on an endpoint share a pipeline.

Every JobQueue polls on its own timer, so at 1,000 JobQueues on a 5 s interval an
endpoint sees about 200 polls a second, each one pipelined round trip with its
own connection checkout, write and wake-up. Here the polls that arrive while
a read is being sent or awaited wait for the next one, which reads the union of
their queues; each poll then takes its own queues out of the result. With one
read in flight per endpoint a quiet operator adds no delay (a lone poll goes out
on the next turn of the event loop) and a busy one sends one pipeline per round
trip however many polls arrived, so connections and round trips stay constant
as JobQueues are added.

Pure asyncio: the read itself is passed in, so this module talks to no server.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

V = TypeVar("V")

ReadAll = Callable[[list[str]], Awaitable[Mapping[str, V]]]
#: One poll: its queues, and where its share of the read goes.
Waiter = tuple[list[str], "asyncio.Future[dict[str, V]]"]


class Coalescer(Generic[V]):
    """Batches ``read(queues)`` calls: at most one ``read_all`` in flight at a time."""

    def __init__(self, read_all: ReadAll[V], *, max_keys: int = 5_000) -> None:
        self._read_all = read_all
        #: A bound on one pipeline's queues; more waiting polls go in the next read.
        self._max_keys = max_keys
        self._waiting: collections.deque[Waiter[V]] = collections.deque()
        self._sent: list[Waiter[V]] = []
        self._runner: asyncio.Task[None] | None = None
        #: How many reads went out and how many polls they answered (tests, metrics).
        self.reads = 0
        self.polls = 0

    async def read(self, queues: Sequence[str]) -> dict[str, V]:
        """``queues``' values from the next shared read; its error if it fails."""
        future: asyncio.Future[dict[str, V]] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(queues), future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        # Yield once, so the polls started in this turn of the loop join the first read.
        await asyncio.sleep(0)
        while self._waiting:
            batch = self._sent = self._take()
            if not batch:
                continue
            wanted = list(dict.fromkeys(q for queues, _ in batch for q in queues))
            self.reads += 1
            self.polls += len(batch)
            try:
                values = await self._read_all(wanted)
            except Exception as exc:  # every poll of the batch gets the read's error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for queues, future in batch:
                if not future.done():
                    future.set_result({q: values[q] for q in queues if q in values})

    def _take(self) -> list[Waiter[V]]:
        """The next batch: waiting polls (cancelled ones dropped) up to ``max_keys`` queues."""
        batch: list[Waiter[V]] = []
        size = 0
        while self._waiting:
            queues, future = self._waiting[0]
            if batch and size + len(queues) > self._max_keys:
                break
            self._waiting.popleft()
            if future.done():
                continue
            batch.append((queues, future))
            size += len(queues)
        return batch

    def close(self) -> None:
        """Stop: a poll still waiting gets CancelledError (its JobQueue is going)."""
        for _, future in [*self._waiting, *self._sent]:
            future.cancel()
        self._waiting.clear()
        if self._runner is not None:
            self._runner.cancel()
