"""Log lines of both programs: JSON (python-json-logger) or text, never a secret.

Both the worker and the operator log through the standard ``logging`` module and
call :func:`setup` once. Context travels as ``extra=`` fields (the worker's
``job_id``, ``job_type``, ``attempt``, ``queue``) or, for code that does not
pass it, through :func:`bound` (the operator's ``jobqueue``/``namespace`` for
every line a JobQueue's loop writes, kopf's included).

Secrets: a password inside a URL (``redis://user:pw@host``) is masked wherever
it appears in a line, and a field whose name says it holds a secret
(``password``, ``secret``, ``token``, ...) is masked whole. Job payloads are
kept out by the worker itself (``JQW_LOG_PAYLOADS``).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]


class LogFormatChoice(enum.StrEnum):
    """``--log-format`` on both command lines."""

    JSON = "json"
    TEXT = "text"


MASK = "***"

# scheme://user:password@ — the password is everything up to the @.
_QUERY_SECRET = re.compile(r"(?P<key>\b[a-z_]*password)=[^&]*")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"']*:)[^@\s\"']+@")
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api_?key|authorization|credential", re.I)
# kopf's own extras: `settings` is its whole configuration object, `k8s_skip` a flag.
_HIDDEN = {"settings", "k8s_skip", "k8s_ref", "color_message"}
_RESERVED = set(RESERVED_ATTRS) | {"message", "asctime"} | _HIDDEN

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "jobqueue_log_context", default=None
)


def redact_url(url: str) -> str:
    """The URL without its passwords, so it can be logged or pasted into a ticket.

    Both the data password (``user:password@``) and a sentinel's
    (``?sentinel_password=``); a sentinel URL lists several hosts, which
    ``urlsplit``'s port parsing refuses, so the netloc is masked as text.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, hosts = netloc.rpartition("@")
        if ":" in creds:
            netloc = f"{creds.split(':', 1)[0]}:{MASK}@{hosts}"
    query = _QUERY_SECRET.sub(lambda m: f"{m['key']}={MASK}", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password masked."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value


class _Bound:
    """A plain class, not a generator: the worker binds every job's fields, so this
    runs once per job and the generator machinery would cost more than the work."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _context.set({**(_context.get() or {}), **self._fields})

    def __exit__(self, *_: object) -> None:
        _context.reset(self._token)


def bound(**fields: Any) -> contextlib.AbstractContextManager[None]:
    """Add ``fields`` to every record logged in this context (task-local under asyncio)."""
    return _Bound(fields)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context: bound fields, kopf's object reference, then ``extra=``."""
    out: dict[str, Any] = dict(_context.get() or {})
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        if ref.get("kind") == "JobQueue":
            out["jobqueue"] = ref.get("name")
        else:
            out["object"] = f"{ref.get('kind')}/{ref.get('name')}"
        if ref.get("namespace"):
            out["namespace"] = ref.get("namespace")
    out.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
    return {k: _clean(k, v) for k, v in out.items()}


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, context, ``exc``."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
            reserved_attrs=sorted(_RESERVED),
            json_default=str,
        )

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        fields = {**log_record, **_fields(record)}
        if "exc_info" in fields:
            fields["exc"] = fields.pop("exc_info")
        log_record.clear()  # rebuilt so that the time comes first on every line
        log_record["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        log_record.update(fields)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class TextLineFormatter(logging.Formatter):
    """``<time> LEVEL logger: message [key=value ...]`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if ctx:
            line += f" [{ctx}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)


def formatter(fmt: str) -> logging.Formatter:
    return JsonLineFormatter() if fmt == "json" else TextLineFormatter()


def setup(fmt: str, level: str | int = "INFO") -> logging.Handler:
    """One stderr handler on the root logger with the chosen format; returns it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
