"""Status writes off the poll's path: latest wins, urgent first, bounded, one per JobQueue.

The write is a function here (the API server's side is covered where the
operator runs against a real one); what this module alone can get wrong is the
order, the coalescing and the bound.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue_operator.ports import KubeError
from jobqueue_operator.status_writes import (
    DirectStatusWrites,
    Key,
    QueuedStatusWrites,
    combined,
)


class GatedWrites:
    """Records each write; a write waits while its key is held."""

    def __init__(self) -> None:
        self.written: list[tuple[Key, Any]] = []
        self.statuses: list[tuple[Key, dict[str, Any]]] = []
        self.in_flight: set[Key] = set()
        self.most_in_flight = 0
        self.held: dict[Key, asyncio.Event] = {}
        self.hold_all: asyncio.Event | None = None
        self.fail: dict[Key, Exception] = {}
        self.overlapped: list[Key] = []

    def hold(self, key: Key) -> None:
        self.held[key] = asyncio.Event()

    def release(self, key: Key) -> None:
        self.held.pop(key).set()

    async def __call__(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = (namespace, name)
        if key in self.in_flight:
            self.overlapped.append(key)
        self.in_flight.add(key)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            if self.hold_all is not None:
                await self.hold_all.wait()
            gate = self.held.get(key)
            if gate is not None:
                await gate.wait()
            error = self.fail.get(key)
            if error is not None:
                raise error
            self.written.append((key, status["n"]))
            self.statuses.append((key, status))
        finally:
            self.in_flight.discard(key)


def ignore(_: KubeError) -> None:
    return None


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


A, B, C, X = ("ns", "a"), ("ns", "b"), ("ns", "c"), ("ns", "x")


async def test_submit_returns_before_the_write_and_the_latest_status_wins() -> None:
    write = GatedWrites()
    writes = QueuedStatusWrites(write, in_flight=2)
    write.hold(A)
    await writes.submit(A, {"n": 1}, urgent=True, on_failure=ignore)
    await settle()
    assert write.in_flight == {A}, "the first status is being written"
    for n in (2, 3, 4):
        await writes.submit(A, {"n": n}, urgent=False, on_failure=ignore)
    assert writes.pending == 1
    assert writes.superseded == 2
    write.release(A)
    assert await writes.flush(1.0)
    assert write.written == [(A, 1), (A, 4)], "2 and 3 were never worth writing"
    assert write.overlapped == []
    await writes.close()


async def test_a_new_decision_goes_before_routine_refreshes() -> None:
    write = GatedWrites()
    writes = QueuedStatusWrites(write, in_flight=1)
    write.hold(X)
    await writes.submit(X, {"n": 0}, urgent=False, on_failure=ignore)
    await settle()
    await writes.submit(A, {"n": 1}, urgent=False, on_failure=ignore)
    await writes.submit(B, {"n": 2}, urgent=False, on_failure=ignore)
    await writes.submit(C, {"n": 3}, urgent=True, on_failure=ignore)
    await writes.submit(B, {"n": 4}, urgent=True, on_failure=ignore)  # B's refresh became urgent
    write.release(X)
    assert await writes.flush(1.0)
    assert write.written == [(X, 0), (C, 3), (B, 4), (A, 1)]
    await writes.close()


async def test_writes_in_flight_are_bounded_and_all_land() -> None:
    write = GatedWrites()
    write.hold_all = asyncio.Event()
    writes = QueuedStatusWrites(write, in_flight=3)
    keys = [("ns", f"q{i}") for i in range(10)]
    for i, key in enumerate(keys):
        await writes.submit(key, {"n": i}, urgent=False, on_failure=ignore)
    await settle()
    assert len(write.in_flight) == 3
    write.hold_all.set()
    assert await writes.flush(1.0)
    assert write.most_in_flight == 3
    assert sorted(write.written) == sorted((key, i) for i, key in enumerate(keys))
    await writes.close()


async def test_a_failed_write_is_reported_and_the_writers_go_on() -> None:
    write = GatedWrites()
    write.fail[A] = KubeError("could not patch the status of JobQueue a: HTTP 500")
    write.fail[B] = RuntimeError("a bug in the client")
    writes = QueuedStatusWrites(write, in_flight=1)
    failures: list[tuple[str, str]] = []
    for key in (A, B, C):
        await writes.submit(
            key, {"n": 0}, urgent=True, on_failure=lambda e, k=key: failures.append((k[1], str(e)))
        )
    assert await writes.flush(1.0)
    assert failures[0] == ("a", "could not patch the status of JobQueue a: HTTP 500")
    assert failures[1][0] == "b"
    assert "a bug in the client" in failures[1][1]
    assert write.written == [(C, 0)]
    await writes.close()


async def test_a_replaced_status_keeps_the_fields_only_it_had() -> None:
    """A status is a merge patch: the pod selection one poll chose is not in the next."""
    write = GatedWrites()
    writes = QueuedStatusWrites(write, in_flight=1)
    write.hold(A)
    await writes.submit(A, {"n": 0}, urgent=True, on_failure=ignore)
    await settle()  # being written: the next two wait
    chosen = {"n": 1, "podSelection": {"pods": ["w-2"], "removedPods": None}}
    await writes.submit(A, chosen, urgent=True, on_failure=ignore)
    await writes.submit(A, {"n": 2, "observed": {"depth": 3}}, urgent=False, on_failure=ignore)
    write.release(A)
    assert await writes.flush(1.0)
    assert write.statuses[-1] == (
        A,
        {"n": 2, "podSelection": {"pods": ["w-2"], "removedPods": None}, "observed": {"depth": 3}},
    )
    await writes.close()


async def test_a_failed_status_is_merged_under_the_next_one() -> None:
    write = GatedWrites()
    write.fail[A] = KubeError("could not patch the status of JobQueue a: HTTP 500")
    writes = QueuedStatusWrites(write, in_flight=1)
    await writes.submit(
        A, {"n": 1, "podSelection": {"pods": ["w-2"]}}, urgent=True, on_failure=ignore
    )
    assert await writes.flush(1.0)
    assert write.statuses == []
    del write.fail[A]
    await writes.submit(A, {"n": 2}, urgent=False, on_failure=ignore)
    assert await writes.flush(1.0)
    assert write.statuses == [(A, {"n": 2, "podSelection": {"pods": ["w-2"]}})]
    await writes.close()


async def test_a_failure_callback_that_raises_does_not_stop_the_writers() -> None:
    write = GatedWrites()
    write.fail[A] = KubeError("HTTP 500")
    writes = QueuedStatusWrites(write, in_flight=1)

    def broken(_: KubeError) -> None:
        raise RuntimeError("a bug in the callback")

    await writes.submit(A, {"n": 0}, urgent=True, on_failure=broken)
    await writes.submit(B, {"n": 1}, urgent=True, on_failure=ignore)
    assert await writes.flush(1.0)
    assert write.written == [(B, 1)]
    await writes.close()


@pytest.mark.parametrize(
    ("older", "newer", "both"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"p": {"x": 1, "y": 2}}, {"p": {"y": 3}}, {"p": {"x": 1, "y": 3}}),
        ({"p": {"x": 1}}, {"p": {"x": None}}, {"p": {"x": None}}),  # a delete stays a delete
        ({"p": {"x": None}}, {}, {"p": {"x": None}}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),  # lists are replaced whole
        ({"p": {"x": 1}}, {"p": 5}, {"p": 5}),
    ],
)
def test_two_merge_patches_combine_into_one(
    older: dict[str, Any], newer: dict[str, Any], both: dict[str, Any]
) -> None:
    assert combined(older, newer) == both


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a status merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


_leaf = st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=2))
_object = st.recursive(
    st.dictionaries(st.sampled_from("abc"), _leaf, max_size=3),
    lambda inner: st.dictionaries(st.sampled_from("abc"), _leaf | inner, max_size=3),
    max_leaves=8,
)
# A patch may also delete (None). What our statuses never do is set an object
# where the earlier patch deleted the field or set it to a non-object (combined's
# docstring): one merge patch cannot say "replace with this object".
_patch = st.recursive(
    st.dictionaries(st.sampled_from("abc"), _leaf | st.none(), max_size=3),
    lambda inner: st.dictionaries(st.sampled_from("abc"), _leaf | st.none() | inner, max_size=3),
    max_leaves=8,
)


def _sets_an_object_over_a_non_object(older: Any, newer: Any) -> bool:
    if not isinstance(older, dict) or not isinstance(newer, dict):
        return False
    return any(
        (k in older and not isinstance(older[k], dict) and isinstance(v, dict))
        or _sets_an_object_over_a_non_object(older.get(k), v)
        for k, v in newer.items()
    )


@settings(max_examples=500)
@given(server=_object, older=_patch, newer=_patch)
def test_combined_patches_do_what_the_two_would_one_after_the_other(
    server: dict[str, Any], older: dict[str, Any], newer: dict[str, Any]
) -> None:
    if _sets_an_object_over_a_non_object(older, newer):
        return
    one_by_one = apply_merge_patch(apply_merge_patch(server, older), newer)
    assert apply_merge_patch(server, combined(older, newer)) == one_by_one


async def test_a_lost_lease_still_writes_a_new_decision_but_no_refresh() -> None:
    write = GatedWrites()
    writes = QueuedStatusWrites(write, in_flight=1)
    write.hold(X)
    await writes.submit(X, {"n": 0}, urgent=False, on_failure=ignore)
    await settle()  # the one writer is busy: A and B wait
    await writes.submit(A, {"n": 1}, urgent=True, on_failure=ignore)  # a new decision
    await writes.submit(B, {"n": 2}, urgent=False, on_failure=ignore)  # a refresh
    writes.forget(A, keep_decision=True)
    writes.forget(B, keep_decision=True)
    write.release(X)
    assert await writes.flush(1.0)
    assert write.written == [(X, 0), (A, 1)]
    await writes.close()


async def test_forget_drops_what_is_not_written_and_close_stops_writing() -> None:
    write = GatedWrites()
    write.hold(X)
    writes = QueuedStatusWrites(write, in_flight=1)
    await writes.submit(X, {"n": 0}, urgent=True, on_failure=ignore)
    await settle()
    await writes.submit(A, {"n": 1}, urgent=True, on_failure=ignore)
    await writes.submit(B, {"n": 2}, urgent=False, on_failure=ignore)
    writes.forget(A)
    write.release(X)
    await writes.close(flush_s=1.0)
    assert write.written == [(X, 0), (B, 2)]
    await writes.submit(C, {"n": 3}, urgent=True, on_failure=ignore)
    await settle()
    assert write.written == [(X, 0), (B, 2)], "nothing is written after close"


async def test_direct_writes_return_after_the_write_and_report_a_failure() -> None:
    write = GatedWrites()
    writes = DirectStatusWrites(write)
    await writes.submit(A, {"n": 1}, urgent=False, on_failure=ignore)
    assert write.written == [(A, 1)]
    write.fail[A] = KubeError("HTTP 500")
    failures: list[KubeError] = []
    await writes.submit(A, {"n": 2}, urgent=False, on_failure=failures.append)
    assert [str(e) for e in failures] == ["HTTP 500"]


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        QueuedStatusWrites(GatedWrites(), in_flight=0)


# One step of a random schedule: a submit (key index, urgent), a forget, or a pause
# that lets writes finish.
Step = tuple[str, int, bool]
steps = st.lists(
    st.tuples(
        st.sampled_from(["submit", "submit", "submit", "forget", "yield"]),
        st.integers(0, 3),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(schedule=steps, in_flight=st.integers(1, 3))
def test_any_schedule_writes_each_jobqueue_in_order_and_ends_on_its_latest(
    schedule: list[Step], in_flight: int
) -> None:
    """Whatever the interleaving: no two writes of a JobQueue at once, its writes in the
    order they were made, at most ``in_flight`` at a time, and the last status of
    every JobQueue not forgotten since is the last one written."""

    async def run() -> None:
        write = GatedWrites()
        writes = QueuedStatusWrites(write, in_flight=in_flight)
        last: dict[Key, int] = {}
        for n, (op, index, urgent) in enumerate(schedule):
            key = ("ns", f"q{index}")
            if op == "submit":
                await writes.submit(key, {"n": n}, urgent=urgent, on_failure=ignore)
                last[key] = n
            elif op == "forget":
                writes.forget(key)
                last.pop(key, None)
            else:
                await asyncio.sleep(0)
        assert await writes.flush(5.0)
        await writes.close()
        assert write.overlapped == []
        assert write.most_in_flight <= in_flight
        for key in {k for k, _ in write.written}:
            ns = [n for k, n in write.written if k == key]
            assert ns == sorted(ns), f"{key} written out of order: {ns}"
        for key, n in last.items():
            assert [m for k, m in write.written if k == key][-1] == n

    asyncio.run(run())
