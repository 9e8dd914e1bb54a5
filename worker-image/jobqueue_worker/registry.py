"""Job types by name: the handler, and how its failures are treated.

A handler takes one ``Job`` and returns a JSON-serialisable result. Async
handlers run on the event loop; plain functions run in the worker's thread pool
so a blocking call does not stall fetching, acks or heartbeats.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from pydantic import JsonValue

from jobqueue_worker.backoff import DEFAULT, BackoffPolicy, FailurePolicy


@dataclass(frozen=True)
class Job:
    """What a handler sees.

    ``deliveries`` > 1 means an earlier run may have done part of the work.
    """

    id: str
    type: str
    queue: str
    payload: JsonValue
    priority: int
    attempt: int
    max_attempts: int
    deliveries: int
    idempotency_key: str | None = None
    timeout_s: float | None = None  # the envelope's own hard timeout, if the producer set one


Handler = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]


@dataclass(frozen=True)
class JobType:
    name: str
    handler: Handler
    backoff: BackoffPolicy = DEFAULT
    permanent: tuple[type[BaseException], ...] = ()
    dead_letter: bool = True  # False: exhausted jobs end as "failed", not in the DLQ
    is_async: bool = field(default=False)
    # Run each job in its own child process (forkserver), which the hard timeout
    # or the memory limit can kill: for sync/CPU-bound handlers that must not
    # wedge the worker. The handler must be a module-level function and the
    # result picklable.
    isolated: bool = False
    # Timeout and expected memory set in code; the environment (TIMEOUT_<TYPE>,
    # JOB_MEMORY_<TYPE>) wins.
    timeout_s: float | None = None
    memory_bytes: int = 0

    @property
    def failure_policy(self) -> FailurePolicy:
        return FailurePolicy(backoff=self.backoff, permanent=self.permanent)


class JobTypeOptions(TypedDict, total=False):
    """What a registration may set besides the name and the handler: the
    :class:`JobType` fields of the same names, which document them and hold the
    defaults."""

    backoff: BackoffPolicy
    permanent: tuple[type[BaseException], ...]
    dead_letter: bool
    isolated: bool
    timeout_s: float | None
    memory_bytes: int


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def register(self, name: str, handler: Handler, **options: Unpack[JobTypeOptions]) -> JobType:
        if name in self._types:
            raise ValueError(f"job type {name!r} is already registered")
        is_async = inspect.iscoroutinefunction(handler)
        if options.get("isolated", False) and is_async:
            raise ValueError(f"job type {name!r}: isolated=True is for sync handlers")
        jt = JobType(name=name, handler=handler, is_async=is_async, **options)
        self._types[name] = jt
        return jt

    def job_type(
        self, name: str | None = None, **options: Unpack[JobTypeOptions]
    ) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``; the name defaults to the function's name."""

        def wrap(fn: Handler) -> Handler:
            self.register(name or fn.__name__, fn, **options)
            return fn

        return wrap

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)
