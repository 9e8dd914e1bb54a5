"""The dispatcher's own connection for ``step`` calls: the worker's hot path.

A worker makes one step call per batch of finished and new jobs, always from its
one dispatcher coroutine. Through redis-py's client each call checks a connection
out of the pool and back, passes the retry wrapper and the event hooks, encodes
its ~40 arguments one by one in Python and, on Python 3.11, wraps the socket
write in a task of its own for the timeout: about 90 µs of worker CPU per call
on the bench machine, 9 µs per job at concurrency 10 (docs/performance.md). Here
one connection is kept, hiredis packs the command in one call, and one
``asyncio.timeout`` bounds the write and the read together.

Failures mean what they mean through the client: a connection error or a timeout
drops the connection (the next call dials again) and is raised, so the runtime
backs off and sends the same acks again (they are idempotent); NOSCRIPT loads the
script and sends once more; an error from the script itself is raised as is.
Only for a plain Redis (direct or TLS): Sentinel and Cluster keep the client's
own routing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | int | float


class StepConnection:
    def __init__(
        self, client: redis.asyncio.Redis, script: AsyncScript, timeout_s: float, *, enabled: bool
    ) -> None:
        self._client = client
        self._script = script
        self._timeout_s = timeout_s
        self._conn: AbstractConnection | None = None
        self._enabled = enabled
        self._busy = False
        self._client_id: int | None = None  # asked once per connection, for CLIENT UNBLOCK
        self._waiting = False

    @property
    def available(self) -> bool:
        """False on Sentinel and Cluster, and while a call is on its way: a second
        caller at the same moment (tests, tools) takes the client's path."""
        return self._enabled and not self._busy

    async def call(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        self._busy = True
        try:
            try:
                return await self._send(keys, args)
            except NoScriptError:
                await self._client.script_load(self._script.script)
                return await self._send(keys, args)
        finally:
            self._busy = False

    async def call_after_wait(
        self, wake_keys: Sequence[str], block_s: float, keys: Sequence[str], args: Sequence[Arg]
    ) -> Any:
        """BLPOP on ``wake_keys`` (up to ``block_s``) and the step, sent in one write.

        Redis serves a connection's commands in order, so the step runs as soon as
        the BLPOP returns (a token, or nil at the timeout or on CLIENT UNBLOCK).
        """
        self._busy = True
        try:
            wait: Any = ("BLPOP", *wake_keys, f"{max(0.01, block_s):.3f}")
            try:
                return await self._send(
                    keys, args, before=hiredis.pack_command(wait), wait_s=block_s
                )
            except NoScriptError:
                await self._client.script_load(self._script.script)
                return await self._send(keys, args)
        finally:
            self._busy = False

    async def unblock(self) -> bool:
        """End a wait now, as its timeout would; False if nothing was waiting."""
        if not (self._waiting and self._client_id is not None):
            return False
        return bool(await self._client.client_unblock(self._client_id))

    async def _connected(self) -> AbstractConnection:
        conn = self._conn
        if conn is None:
            conn = self._client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            # Bounded in _send, once for the write and the read together.
            conn.socket_timeout = None
            self._conn = conn
            self._client_id = None
        if self._client_id is None:
            async with asyncio.timeout(self._timeout_s):
                await conn.send_command("CLIENT", "ID", check_health=False)
                self._client_id = int(await conn.read_response())
        return conn

    async def _send(
        self, keys: Sequence[str], args: Sequence[Arg], *, before: bytes = b"", wait_s: float = 0.0
    ) -> Any:
        try:
            conn = await self._connected()
        except BaseException:
            await self._drop()
            raise
        # hiredis's stub declares a one-item tuple; it takes any number of items.
        command: Any = (
            "EVALSHA",
            self._script.sha,
            len(keys),
            *keys,
            *(repr(a) if isinstance(a, float) else a for a in args),
        )
        packed = before + hiredis.pack_command(command)
        try:
            async with asyncio.timeout(self._timeout_s + wait_s):
                await conn.send_packed_command(packed, check_health=False)
                if before:
                    self._waiting = True
                    try:
                        await conn.read_response()  # the wait's reply: a token or nil
                    except ResponseError:
                        await self._drop()  # the step's reply is still on its way
                        raise
                    finally:
                        self._waiting = False
                return await conn.read_response()
        except ResponseError:
            raise  # the reply was read whole: the connection is still in step
        except TimeoutError:
            await self._drop()
            raise RedisTimeoutError(f"step call took over {self._timeout_s:g} s") from None
        except BaseException:
            # A half-read reply (or a cancellation mid-call) leaves the connection
            # out of step with the server: never reuse it.
            await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._client_id = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def close(self) -> None:
        await self._drop()
