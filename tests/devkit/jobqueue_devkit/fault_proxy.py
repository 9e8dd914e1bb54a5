"""A TCP proxy that injects network faults between a client and Redis, on loopback.

Modes, switchable at any time from any thread:

* ``heal()``: bytes pass (after ``delay_s`` per chunk read, each way, when set);
* ``cut()``: every connection is closed and new ones are closed on accept, as
  when a peer resets or a route is withdrawn; clients see errors at once;
* ``blackhole()``: a half-open partition: connections stay open (and new ones
  are accepted) but no byte goes through either way, so clients only notice
  through their own timeouts, the hardest case for lease-based fencing.

It runs its own event loop in a daemon thread, so synchronous tests, spawned
worker processes and the operator can all go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from jobqueue_devkit.errors import DevkitError

Mode = Literal["pass", "cut", "blackhole"]
CHUNK = 65536


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``target_host:target_port``."""

    target_host: str
    target_port: int
    delay_s: float = 0.0
    mode: Mode = "pass"
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _server: asyncio.Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or self._server is None:
            raise DevkitError(f"fault proxy could not listen: {failure[0] if failure else '?'}")
        return self

    def _call(self, fn: Callable[[], None]) -> None:
        if self._loop is None:
            raise DevkitError("fault proxy not started")
        done = threading.Event()

        def wrapped() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(wrapped)
        done.wait(5)

    def heal(self) -> None:
        self.mode = "pass"

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def cut(self) -> None:
        """Close every open connection; new ones are closed on accept until ``heal()``."""
        self.mode = "cut"
        self._call(self._close_all)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()  # RST, not a polite FIN: what a reset path looks like
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while True:
                data = await src.read(CHUNK)
                if not data or self.mode == "cut":
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.mode == "blackhole":
                    continue  # dropped: the sender never learns
                dst.write(data)
                await dst.drain()
        dst.transport.abort()

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def shutdown() -> None:
            server.close()
            self._close_all()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None
