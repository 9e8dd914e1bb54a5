"""Payload values that must never reach a page: configured field names, URL passwords."""

from __future__ import annotations

from typing import Any

from jobqueue_protocol.logformat import redact_text

MASK = "[redacted]"
DEFAULT_FIELDS = ("password", "secret", "token", "api_key", "apikey", "authorization")


def redact(value: Any, fields: frozenset[str]) -> Any:
    """A copy of ``value`` with every mapping entry whose key (case-insensitive)
    contains one of ``fields`` masked, at any depth, and passwords in URLs masked."""
    if isinstance(value, dict):
        return {
            k: MASK if any(f in str(k).lower() for f in fields) else redact(v, fields)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, fields) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
