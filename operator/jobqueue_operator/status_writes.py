"""Status writes off the poll's path: the latest status per JobQueue, a few PATCHes at a time.

A poll used to PATCH its JobQueue's status before it could sleep, so the API
server's speed set the polling rate. With 10,000 JobQueues the status refreshes
alone asked for more PATCHes than the API server answered: every PATCH queued
behind the client's connection limit, a tick took minutes, and each JobQueue was
polled every 196 s instead of every 5 (BENCHMARKS.md, operator scale). A slow
API server must not slow the reading of the queues, and an operator must not
take every connection the API server offers.

:class:`QueuedStatusWrites` keeps one pending status per JobQueue (a newer one
replaces it) and writes them with a bounded number of PATCHes in flight. A
status is a merge patch, not a whole status: a field set on one poll only (the
pod selection, say) is left out by the next. So a newer status replaces an
older unwritten one by merging over it (:func:`combined`), and a failed write is
merged under the JobQueue's next status. A status whose decision changed is
urgent and goes before the routine refreshes of a moving queue sample. Never two
writes of one JobQueue at once, so they land in the order they were made. A
failed write is reported back to its JobQueue, whose next poll writes again.

:class:`DirectStatusWrites` writes inline, as before: for a loop run on its own
(tests, a one-shot run) where "after the tick, the status is written" matters
more than the poll's pace.

Pure asyncio: the write is passed in, so this module talks to no server.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jobqueue_operator import metrics
from jobqueue_operator.ports import KubeError

log = logging.getLogger("jobqueue_operator")

#: ``(namespace, name)`` of a JobQueue.
Key = tuple[str, str]
Write = Callable[[str, str, dict[str, Any]], Awaitable[None]]
#: Told when a write failed, so the JobQueue's next poll writes again.
OnFailure = Callable[[KubeError], None]


class StatusWrites(Protocol):
    """Where a Reporter sends a status to be written."""

    async def submit(
        self, key: Key, status: dict[str, Any], *, urgent: bool, on_failure: OnFailure
    ) -> None:
        """Write ``status`` (now, or soon); ``on_failure`` hears of a write that failed."""

    def forget(self, key: Key, *, keep_decision: bool = False) -> None:
        """The JobQueue is gone or no longer ours: drop what it has not written yet.

        With ``keep_decision``, a status carrying a new decision (urgent) is still
        written: it holds the cooldown stamps the next leader resumes from.
        """


class DirectStatusWrites:
    """Write inline: ``submit`` returns once the PATCH has."""

    def __init__(self, write: Write) -> None:
        self._write = write

    async def submit(
        self, key: Key, status: dict[str, Any], *, urgent: bool, on_failure: OnFailure
    ) -> None:
        try:
            await self._write(key[0], key[1], status)
        except KubeError as exc:
            on_failure(exc)

    def forget(self, key: Key, *, keep_decision: bool = False) -> None:
        return None


def combined(older: Mapping[str, Any], newer: Mapping[str, Any]) -> dict[str, Any]:
    """One merge patch that does what ``older`` then ``newer`` would (RFC 7386).

    Objects merge key by key, deeper down too; anything else in ``newer``, a
    ``None`` (delete) included, replaces what ``older`` had. One case is not
    exact: an object in ``newer`` where ``older`` deleted the field or set a
    non-object merges into the server's value instead of replacing it (one merge
    patch cannot say "replace"). No field of our status changes between an object
    and anything else.
    """
    out = dict(older)
    for key, value in newer.items():
        before = out.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            out[key] = combined(before, value)
        else:
            out[key] = value
    return out


@dataclass(slots=True)
class _Pending:
    status: dict[str, Any]
    urgent: bool
    on_failure: OnFailure
    since: float


class QueuedStatusWrites:
    """The latest status of each JobQueue, written by ``in_flight`` writers, urgent first."""

    def __init__(
        self,
        write: Write,
        *,
        in_flight: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {in_flight}")
        self._write = write
        self._in_flight = in_flight
        self._clock = clock
        self._pending: dict[Key, _Pending] = {}
        # A key sits in one of the two lines while it is pending and not being written;
        # a pending key whose write is under way waits for it (see _finished).
        self._urgent: collections.deque[Key] = collections.deque()
        self._routine: collections.deque[Key] = collections.deque()
        self._writing: set[Key] = set()
        self._ready = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
        #: Statuses whose write failed with nothing newer pending: merged under the
        #: JobQueue's next one, so no field of theirs is lost.
        self._unsent: dict[Key, dict[str, Any]] = {}
        self._closed = False
        #: Statuses replaced by a newer one before they were written (tests, metrics).
        self.superseded = 0

    async def submit(
        self, key: Key, status: dict[str, Any], *, urgent: bool, on_failure: OnFailure
    ) -> None:
        """Queue ``status`` for ``key``, replacing one not written yet; returns at once.

        After :meth:`close` nothing is written (the operator is exiting).
        """
        if self._closed:
            return
        self._start()
        unsent = self._unsent.pop(key, None)
        if unsent is not None:
            status = combined(unsent, status)
        earlier = self._pending.get(key)
        if earlier is not None:
            self.superseded += 1
            metrics.STATUS_WRITES_SUPERSEDED.inc()
            urgent = urgent or earlier.urgent
            status = combined(earlier.status, status)
            self._pending[key] = _Pending(status, urgent, on_failure, earlier.since)
            if urgent and not earlier.urgent and key not in self._writing:
                self._urgent.append(key)  # its routine place is skipped when reached
        else:
            self._pending[key] = _Pending(status, urgent, on_failure, self._clock())
            if key not in self._writing:
                self._line(urgent).append(key)
        self._publish()

    def forget(self, key: Key, *, keep_decision: bool = False) -> None:
        self._unsent.pop(key, None)
        pending = self._pending.get(key)
        if pending is None or (keep_decision and pending.urgent):
            return
        del self._pending[key]
        self._publish()

    @property
    def pending(self) -> int:
        """Statuses made and not yet written."""
        return len(self._pending)

    async def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every pending status; whether all were written."""
        deadline = time.monotonic() + timeout_s
        while self._pending or self._writing:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self, flush_s: float = 0.0) -> None:
        """Stop the writers, after up to ``flush_s`` to write what is pending."""
        if flush_s > 0:
            await self.flush(flush_s)
        self._closed = True
        for task in self._writers:
            task.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        self._writers.clear()

    def _start(self) -> None:
        if not self._writers:
            loop = asyncio.get_running_loop()
            self._writers = [loop.create_task(self._writer()) for _ in range(self._in_flight)]

    def _line(self, urgent: bool) -> collections.deque[Key]:
        return self._urgent if urgent else self._routine

    def _next(self) -> Key | None:
        """The next key to write: urgent first; stale places (written, forgotten) skipped."""
        for line in (self._urgent, self._routine):
            while line:
                key = line.popleft()
                pending = self._pending.get(key)
                if pending is None or key in self._writing:
                    continue
                if line is self._routine and pending.urgent:
                    continue  # it has a place in the urgent line
                return key
        return None

    async def _writer(self) -> None:
        while True:
            key = self._next()
            if key is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            pending = self._pending.pop(key)
            self._writing.add(key)
            try:
                await self._write(key[0], key[1], pending.status)
            except KubeError as exc:
                self._failed(key, pending, exc)
            except Exception as exc:  # a connection error, say: the writer must go on
                log.warning("Status write of JobQueue %s/%s failed: %r", *key, exc)
                self._failed(key, pending, KubeError(f"status write failed: {exc!r}"))
            finally:
                self._finished(key)
            metrics.STATUS_WRITE_DELAY.observe(self._clock() - pending.since)
            self._publish()

    def _failed(self, key: Key, pending: _Pending, error: KubeError) -> None:
        """Keep the failed status to merge under the next one, and tell its JobQueue."""
        newer = self._pending.get(key)
        if newer is not None:
            newer.status = combined(pending.status, newer.status)
        else:
            self._unsent[key] = pending.status
        try:
            pending.on_failure(error)
        except Exception:  # a broken callback must not end a writer
            log.exception("Status write failure of JobQueue %s/%s not reported", *key)

    def _finished(self, key: Key) -> None:
        """A newer status that came during the write takes its place in line now."""
        self._writing.discard(key)
        newer = self._pending.get(key)
        if newer is not None:
            self._line(newer.urgent).append(key)
            self._ready.set()

    def _publish(self) -> None:
        metrics.STATUS_WRITES_PENDING.set(len(self._pending))
        if self._urgent or self._routine:
            self._ready.set()
