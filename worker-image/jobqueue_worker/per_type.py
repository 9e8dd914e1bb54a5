"""The per-job-type variables and how a job type's name becomes part of one.

``RATE_LIMIT_<TYPE>``, ``WORKER_CONCURRENCY_<TYPE>``, ``TIMEOUT_<TYPE>`` (hard,
seconds), ``SOFT_TIMEOUT_<TYPE>`` and ``JOB_MEMORY_<TYPE>`` (expected bytes) take
no ``JQW_`` prefix. ``<TYPE>`` is the job type name upper-cased with every
character other than A-Z and 0-9 as ``_`` (``send-email`` → ``SEND_EMAIL``). Each
prefix fills one dict field of ``settings.WorkerSettings``, keyed by ``<TYPE>``;
this module is the naming: which prefix fills which field, a type's key, which
variables of an environment are per-type ones, and the variable an error names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

# Per-type settings: environment prefix → field (a dict keyed by the type key).
PER_TYPE = {
    "RATE_LIMIT_": "rate_limits",
    "WORKER_CONCURRENCY_": "type_concurrency",
    "SOFT_TIMEOUT_": "soft_timeouts",
    "TIMEOUT_": "timeouts",
    "JOB_MEMORY_": "type_memory",
}
#: Field → environment prefix, to name the variable behind a value.
FIELD_PREFIX = {v: k for k, v in PER_TYPE.items()}
_TYPE_KEY = re.compile(r"^[A-Z0-9_]+$")


@functools.lru_cache(maxsize=4096)
def type_key(job_type: str) -> str:
    """The ``<TYPE>`` part of a per-type variable for a job type name.

    Cached: the supervisor asks for it on every job (its timeouts), and the names
    are the registered types.
    """
    return re.sub(r"[^A-Z0-9]", "_", job_type.upper())


def check_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` as it is when every key could be a ``<TYPE>``; else ValueError."""
    for k in mapping:
        if not _TYPE_KEY.match(k):
            raise ValueError(f"{k!r}: a job type key is A-Z, 0-9 and _ only")
    return mapping


def named(prefix: str, key: str, parse: Callable[[Any], Any], value: object) -> object:
    """Run ``parse``; a failure names the variable (``RATE_LIMIT_EMAIL: ...``)."""
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{prefix}{key}: {exc}") from None


def collect(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Collect ``RATE_LIMIT_EMAIL=...`` style variables by field."""
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        # Longest prefix first: SOFT_TIMEOUT_X is not TIMEOUT_ of type "SOFT_..."
        for prefix in sorted(PER_TYPE, key=len, reverse=True):
            if name.startswith(prefix) and len(name) > len(prefix):
                if prefix == "TIMEOUT_" and name.startswith("SOFT_TIMEOUT_"):
                    continue
                out.setdefault(PER_TYPE[prefix], {})[name[len(prefix) :]] = value
                break
    return out
