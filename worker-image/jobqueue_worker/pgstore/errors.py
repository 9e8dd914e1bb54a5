"""What PostgreSQL failures mean to the caller, as one-line errors with no password.

Shared by every module of the package: a refusal (password, role, database) is a
``ConfigError`` that no retry will fix, an outage a plain ``StoreError``, and a
missing or older schema says which command to run.
"""

from __future__ import annotations

import re

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict

from jobqueue_worker import pgschema
from jobqueue_worker.errors import ConfigError


class StoreError(Exception):
    """PostgreSQL failed or refused; the message is one line and holds no password."""


class SchemaMissingError(StoreError, ConfigError):
    """The database has no jobqueue schema, or an older one."""


class AccessRefusedError(StoreError, ConfigError):
    """The server answered and said no (password, role, database): retrying will not help."""


# SQLSTATE classes of a refusal, as opposed to an outage: 28 (invalid authorization)
# and 3D (invalid catalog name: no such database).
_REFUSALS = ("28", "3D")


def connect_error(exc: psycopg.Error) -> StoreError:
    message = f"cannot connect to PostgreSQL: {one_line(exc)}"
    sqlstate = exc.sqlstate or ""
    if sqlstate.startswith(_REFUSALS) or "password authentication failed" in message:
        return AccessRefusedError(message)
    return StoreError(message)


def one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc).strip().splitlines()[0] if str(exc).strip() else "")


def check_dsn(dsn: str) -> str:
    """The DSN itself, or a ``ConfigError`` saying why it does not parse."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"JQW_POSTGRES_DSN does not parse: {one_line(exc)}") from None
    return dsn


def schema_missing(found: int | None) -> SchemaMissingError:
    have = "no jobqueue schema" if found is None else f"jobqueue schema version {found}"
    return SchemaMissingError(
        f"PostgreSQL database has {have}, this version needs {pgschema.LATEST}:"
        " run `jobqueue db upgrade`"
    )


def translate(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return schema_missing(None)
    return StoreError(f"PostgreSQL: {one_line(exc)}")
