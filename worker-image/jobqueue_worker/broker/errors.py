"""Which Redis errors mean "back off and try again", and a one-line reason for any."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Errors after which the right move is "back off and try again"; redis-py
# reconnects on the next command by itself.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and (
        text.startswith("LOADING") or text.startswith("READONLY") or "UNBLOCKED" in text
    )


def describe_redis_error(exc: BaseException) -> tuple[bool, str] | None:
    """``(unreachable, one-line reason)`` for an error raised by redis-py, else None.

    Unreachable covers a refused or timed-out connection and a refused login, so
    a command line can tell "Redis is down" from "Redis said no".
    """
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True, str(exc) or type(exc).__name__
    if isinstance(exc, RedisError):
        return False, str(exc) or type(exc).__name__
    return None
