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
