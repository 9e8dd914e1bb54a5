"""The write-back's column arrays: byte-for-byte psycopg's encoding, and read back intact."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import adapters
from psycopg.adapt import AdaptersMap, PyFormat, Transformer

from jobqueue_worker.pgstore.arrays import Float8s, Int4s, Texts, register

pytestmark = [pytest.mark.postgres]

# No NUL and no lone surrogate: PostgreSQL text cannot hold either, and
# ``pgevents`` replaces both before a value gets here.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)
INT4 = st.integers(-(2**31), 2**31 - 1)
FLOAT8 = st.floats(allow_nan=False)


def _ours(column: list[Any]) -> bytes:
    adapters_map = AdaptersMap(adapters)
    register(adapters_map)
    tx = Transformer(adapters_map)
    return bytes(tx.get_dumper(column, PyFormat.BINARY).dump(column) or b"")


def _psycopg(values: list[Any], element: str) -> bytes:
    """psycopg's own binary list dumper, its element type fixed by a typed sample."""
    tx = Transformer(AdaptersMap(adapters))
    dumper = tx.get_dumper(values, PyFormat.BINARY)
    if element == "int4":
        # psycopg picks the narrowest integer type for the values: force int4.
        from psycopg.types.array import ListBinaryDumper
        from psycopg.types.numeric import Int4BinaryDumper

        dumper = ListBinaryDumper(list, tx)
        dumper.sub_dumper = Int4BinaryDumper(int, tx)
    return bytes(dumper.dump(values) or b"")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=30))
def test_texts_encode_as_psycopg_does(values: list[str | None]) -> None:
    if all(v is None for v in values):
        return  # psycopg has no element type to name for an all-NULL list
    assert _ours(Texts(values))[12:] == _psycopg(values, "text")[12:]


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), FLOAT8), min_size=1, max_size=30))
def test_float8s_encode_as_psycopg_does(values: list[float | None]) -> None:
    if all(v is None for v in values):
        return
    assert _ours(Float8s(values)) == _psycopg(values, "float8")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), INT4), min_size=1, max_size=30))
def test_int4s_encode_as_psycopg_does(values: list[int | None]) -> None:
    if all(v is None for v in values):
        return
    assert _ours(Int4s(values))[12:] == _psycopg(values, "int4")[12:]


@pytest.mark.parametrize(
    ("column", "cast"),
    [
        (Texts(["a", "é ü", "", None, "x" * 5000]), "text[]"),
        (Texts([None, None]), "text[]"),
        (Texts([]), "text[]"),
        (Int4s([1, -(2**31), 2**31 - 1, None]), "int[]"),
        (Int4s([]), "int[]"),
        (Float8s([0.0, -1.5, 1e300, math.inf, None]), "float8[]"),
        (Float8s([1.0]), "float8[]"),
    ],
)
def test_columns_read_back_from_postgresql(pg_dsn: str, column: list[Any], cast: str) -> None:
    with psycopg.connect(pg_dsn, client_encoding="utf8") as conn:
        register(conn.adapters)
        row = conn.execute(f"SELECT %b::{cast}", (column,)).fetchone()
    assert row is not None
    assert row[0] == list(column)


def test_out_of_range_int4_is_refused_before_sending() -> None:
    with pytest.raises(Exception, match=r"format requires|out of range"):
        _ours(Int4s([2**31]))
