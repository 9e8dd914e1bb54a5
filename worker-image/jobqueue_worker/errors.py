"""The few exceptions that cross the handler boundary; each one says what happens next."""

from __future__ import annotations


class Retry(Exception):  # noqa: N818 - an instruction, not an error
    """Raised by a handler to ask for another attempt, optionally after ``delay_s``.

    It still uses an attempt: a job that keeps asking is dead-lettered at
    ``max_attempts`` like any failure.
    """

    def __init__(self, delay_s: float | None = None, message: str = "retry requested") -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(Exception):
    """Retrying cannot help (bad input, a refused payment): skip the retries, dead-letter now."""


class ConfigError(Exception):
    """Invalid worker configuration; the process exits at start naming the setting."""


class EnqueueError(Exception):
    """A job was refused before it reached Redis (bad envelope, too large)."""


class JobTimeout(Exception):  # noqa: N818 - named after what happened
    """The attempt passed its hard timeout and was stopped (cancelled or killed).

    Retried like a failure, with ``JQW_TIMEOUT_BACKOFF_MULTIPLIER`` times the
    type's backoff; dead-lettered with reason ``timeout`` when attempts run out.
    """

    def __init__(self, seconds: float, how: str) -> None:
        super().__init__(f"hard timeout after {seconds:.3f} s ({how})")
        self.seconds = seconds
        self.how = how


class MemoryLimitExceeded(Exception):  # noqa: N818
    """An isolated job's child process passed the worker's hard memory limit and was killed."""
