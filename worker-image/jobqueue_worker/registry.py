"""Job types by name: the handler, and how its failures are treated.

A handler takes one ``Job`` and returns a JSON-serialisable result. Async
handlers run on the event loop; plain functions run in the worker's thread pool
so a blocking call does not stall fetching, acks or heartbeats.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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


Handler = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]


@dataclass(frozen=True)
class JobType:
    name: str
    handler: Handler
    backoff: BackoffPolicy = DEFAULT
    permanent: tuple[type[BaseException], ...] = ()
    dead_letter: bool = True  # False: exhausted jobs end as "failed", not in the DLQ
    is_async: bool = field(default=False)

    @property
    def failure_policy(self) -> FailurePolicy:
        return FailurePolicy(backoff=self.backoff, permanent=self.permanent)


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        backoff: BackoffPolicy = DEFAULT,
        permanent: tuple[type[BaseException], ...] = (),
        dead_letter: bool = True,
    ) -> JobType:
        if name in self._types:
            raise ValueError(f"job type {name!r} is already registered")
        jt = JobType(
            name=name,
            handler=handler,
            backoff=backoff,
            permanent=permanent,
            dead_letter=dead_letter,
            is_async=inspect.iscoroutinefunction(handler),
        )
        self._types[name] = jt
        return jt

    def job_type(
        self,
        name: str | None = None,
        *,
        backoff: BackoffPolicy = DEFAULT,
        permanent: tuple[type[BaseException], ...] = (),
        dead_letter: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``; the name defaults to the function's name."""

        def wrap(fn: Handler) -> Handler:
            self.register(
                name or fn.__name__,
                fn,
                backoff=backoff,
                permanent=permanent,
                dead_letter=dead_letter,
            )
            return fn

        return wrap

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)
