"""Columns sent as one-dimensional PostgreSQL arrays in binary, a column at a time.

The status write-back sends each batch as nine column arrays. psycopg's generic
list dumper takes one Python-level step per element (a sub-dumper call, a length
packed, two appends), which made the arrays the largest part of the worker CPU
the write-back cost. Here a column without NULLs is encoded by a few calls that
each run over the whole column in C (``struct.pack``, ``map``, ``bytes.join``);
only a column mixing values and NULLs takes a step per element.

Wrap a column in ``Int4s``, ``Float8s`` or ``Texts`` and pass it to a ``%b``
placeholder of a connection given to ``register``. Text is encoded as UTF-8, so
the connection must use that client encoding (``AsyncStore`` sets it).

The format is ``array_recv``'s: number of dimensions, has-NULL flag, element
type oid, then per dimension its length and lower bound (1), then per element
its byte length (-1 for NULL) and its bytes.
"""

from __future__ import annotations

import struct
from itertools import chain, repeat
from typing import Any

from psycopg import postgres
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

_I32 = struct.Struct(">i")
_NULL = _I32.pack(-1)
_HEAD = struct.Struct(">iiIii")
_TEXT, _INT4, _FLOAT8 = (postgres.types[name] for name in ("text", "int4", "float8"))


class Int4s(list[int | None]):
    """A column sent as ``int4[]``."""


class Float8s(list[float | None]):
    """A column sent as ``float8[]``."""


class Texts(list[str | None]):
    """A column sent as ``text[]``."""


def _head(n: int, has_null: bool, element_oid: int) -> bytes:
    return _HEAD.pack(1, int(has_null), element_oid, n, 1)


def encode_fixed(values: list[Any], code: str, size: int, element_oid: int) -> bytes:
    """An array of a fixed-size type; ``code`` is its ``struct`` letter, ``size`` its bytes."""
    n = len(values)
    if None not in values:
        # Each element is its length (always ``size``) and then its value: one
        # pack over the interleaved column.
        fields = chain.from_iterable(zip(repeat(size, n), values, strict=True))
        return _head(n, False, element_oid) + struct.pack(">" + ("i" + code) * n, *fields)
    one = struct.Struct(">i" + code)
    parts = [_NULL if v is None else one.pack(size, v) for v in values]
    return _head(n, True, element_oid) + b"".join(parts)


def encode_text(values: list[str | None]) -> bytes:
    n, oid = len(values), _TEXT.oid
    if None not in values:
        encoded = [v.encode() for v in values]  # type: ignore[union-attr]
        lengths = map(_I32.pack, map(len, encoded))
        return _head(n, False, oid) + b"".join(
            chain.from_iterable(zip(lengths, encoded, strict=True))
        )
    if values.count(None) == n:
        return _head(n, True, oid) + _NULL * n
    parts = [_NULL if v is None else _I32.pack(len(b := v.encode())) + b for v in values]
    return _head(n, True, oid) + b"".join(parts)


class _Int4sDumper(Dumper):
    format = Format.BINARY
    oid = _INT4.array_oid

    def dump(self, obj: Any) -> bytes:
        return encode_fixed(obj, "i", 4, _INT4.oid)


class _Float8sDumper(Dumper):
    format = Format.BINARY
    oid = _FLOAT8.array_oid

    def dump(self, obj: Any) -> bytes:
        return encode_fixed(obj, "d", 8, _FLOAT8.oid)


class _TextsDumper(Dumper):
    format = Format.BINARY
    oid = _TEXT.array_oid

    def dump(self, obj: Any) -> bytes:
        return encode_text(obj)


def register(adapters: AdaptersMap) -> None:
    """Teach a connection (or any adapters map) to send the three column types."""
    adapters.register_dumper(Int4s, _Int4sDumper)
    adapters.register_dumper(Float8s, _Float8sDumper)
    adapters.register_dumper(Texts, _TextsDumper)
