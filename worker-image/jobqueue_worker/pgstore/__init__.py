"""The ONLY part of the worker side that talks to PostgreSQL (psycopg 3; a package
of four modules).

- ``inserts``: ``enqueue`` / ``aenqueue`` (and ``*_many``) insert job rows inside
  the CALLER's transaction: a rollback enqueues nothing, a commit is delivered by
  the migrator.
- ``asyncstore``: ``AsyncStore`` serves the long-running processes (the migrator,
  a worker's status write-back): one lazily (re)connected connection, every
  psycopg error turned into a one-line ``StoreError``.
- ``commands``: ``upgrade``, ``read_job``, ``history`` and ``prune`` serve the
  command line.
- ``errors``: the one-line errors all three raise.

Callers import from the package (``from jobqueue_worker import pgstore``).
"""

from __future__ import annotations

from jobqueue_worker.pgstore.asyncstore import AsyncStore, Claimed
from jobqueue_worker.pgstore.commands import history, prune, read_job, upgrade
from jobqueue_worker.pgstore.errors import (
    AccessRefusedError,
    SchemaMissingError,
    StoreError,
    check_dsn,
    one_line,
)
from jobqueue_worker.pgstore.inserts import (
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_QUEUE,
    aenqueue,
    aenqueue_many,
    enqueue,
    enqueue_many,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_QUEUE",
    "AccessRefusedError",
    "AsyncStore",
    "Claimed",
    "SchemaMissingError",
    "StoreError",
    "aenqueue",
    "aenqueue_many",
    "check_dsn",
    "enqueue",
    "enqueue_many",
    "history",
    "one_line",
    "prune",
    "read_job",
    "upgrade",
]
