"""The polls of one endpoint share reads: one in flight, the rest wait for the next."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from jobqueue_operator.coalesce import Coalescer


class FakeReads:
    """Answers ``q -> "v:" + q``; each read can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self, queues: list[str]) -> Mapping[str, str]:
        self.calls.append(queues)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {q: f"v:{q}" for q in queues if not q.startswith("missing")}


async def test_polls_in_one_turn_share_one_read_and_each_gets_its_queues() -> None:
    reads = FakeReads()
    c = Coalescer(reads)
    a, b, d = await asyncio.gather(c.read(["q1", "q2"]), c.read(["q2", "q3"]), c.read(["q4"]))
    assert reads.calls == [["q1", "q2", "q3", "q4"]]
    assert a == {"q1": "v:q1", "q2": "v:q2"}
    assert b == {"q2": "v:q2", "q3": "v:q3"}
    assert d == {"q4": "v:q4"}
    assert (c.reads, c.polls) == (1, 3)


async def test_polls_arriving_during_a_read_go_together_in_the_next() -> None:
    reads = FakeReads()
    reads.gate = asyncio.Event()
    c = Coalescer(reads)
    first = asyncio.ensure_future(c.read(["a"]))
    await asyncio.sleep(0.01)
    assert reads.calls == [["a"]]
    later = [asyncio.ensure_future(c.read([q])) for q in ("b", "c")]
    await asyncio.sleep(0.01)
    assert len(reads.calls) == 1  # one read in flight at a time
    reads.gate.set()
    assert await first == {"a": "v:a"}
    assert [await f for f in later] == [{"b": "v:b"}, {"c": "v:c"}]
    assert reads.calls == [["a"], ["b", "c"]]


async def test_a_failed_read_fails_its_polls_and_the_next_read_works() -> None:
    reads = FakeReads()
    reads.fail = ConnectionError("down")
    c = Coalescer(reads)
    results = await asyncio.gather(c.read(["a"]), c.read(["b"]), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    reads.fail = None
    assert await c.read(["a"]) == {"a": "v:a"}


async def test_a_poll_that_gave_up_does_not_disturb_the_others() -> None:
    reads = FakeReads()
    reads.gate = asyncio.Event()
    c = Coalescer(reads)
    impatient = asyncio.ensure_future(asyncio.wait_for(c.read(["a"]), 0.01))
    patient = asyncio.ensure_future(c.read(["b"]))
    with pytest.raises(TimeoutError):
        await impatient
    reads.gate.set()
    assert await patient == {"b": "v:b"}


async def test_a_queue_the_read_did_not_return_is_absent_not_an_error() -> None:
    c = Coalescer(FakeReads())
    assert await c.read(["a", "missing-1"]) == {"a": "v:a"}


@pytest.mark.parametrize(
    ("sizes", "max_keys", "expected_reads"),
    [
        ([1, 1, 1], 5_000, 1),
        ([3, 3, 3], 6, 2),  # the third poll would make 9 > 6
        ([10], 4, 1),  # one poll bigger than the bound still goes, alone
        ([2, 10, 2], 4, 3),
    ],
)
async def test_one_read_carries_at_most_max_keys_queues(
    sizes: list[int], max_keys: int, expected_reads: int
) -> None:
    reads = FakeReads()
    c = Coalescer(reads, max_keys=max_keys)
    polls = [[f"p{i}q{j}" for j in range(n)] for i, n in enumerate(sizes)]
    got = await asyncio.gather(*(c.read(p) for p in polls))
    assert len(reads.calls) == expected_reads
    assert [sorted(g) for g in got] == [sorted(p) for p in polls]


async def test_close_cancels_the_polls_still_waiting() -> None:
    reads = FakeReads()
    reads.gate = asyncio.Event()
    c = Coalescer(reads)
    sent = asyncio.ensure_future(c.read(["a"]))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(c.read(["b"]))
    await asyncio.sleep(0)
    c.close()
    for f in (sent, queued):
        with pytest.raises(asyncio.CancelledError):
            await f
