"""The Lua contract (pure): names, not positions, on both sides."""

from __future__ import annotations

import re

import pytest

from jobqueue_protocol import keys
from jobqueue_worker import lua


def test_argv_follows_the_declared_order_whatever_the_call_order() -> None:
    assert lua.REPLAY.argv(["a", "b"], job_ttl_ms=5) == [5, "a", "b"]
    assert lua.HEARTBEAT.argv(stale_s=3, worker_id="w", body_json="{}") == ["w", "{}", 3]


@pytest.mark.parametrize("values", [{}, {"job_ttl_ms": 1, "extra": 2}, {"jobttl": 1}])
def test_a_missing_or_unknown_argument_is_refused(values: dict[str, int]) -> None:
    with pytest.raises(TypeError, match=r"replay\.lua takes exactly job_ttl_ms"):
        lua.REPLAY.argv(**values)


def test_the_header_names_every_key_of_the_queue_block_at_its_position() -> None:
    src = lua.source(lua.REAP)
    for i, name in enumerate(keys.QUEUE_BLOCK, start=1):
        assert f"local {name} = {i}\n" in src
        assert f"local KEY_{name} = KEYS[{name}]\n" in src
    assert "local gate_ms = tonumber(ARGV[1])\n" in src
    assert "local worker_id = ARGV[7]\n" in src


def test_no_script_addresses_a_key_or_an_argument_by_a_bare_number() -> None:
    for spec in lua.SCRIPTS:
        body = lua.source(spec).split("local ARGV_TAIL = ", 1)[1]
        assert not re.search(r"KEYS\[\d+\]|ARGV\[\d+\]|K\(\w+, \d+\)", body), spec.name


def test_a_queue_block_is_the_keys_in_the_named_order() -> None:
    block = keys.queue_block("orders")
    assert len(block) == len(keys.QUEUE_BLOCK)
    assert block[keys.QUEUE_BLOCK.index("DELAYED")] == keys.delayed_key("orders")
    assert block[keys.QUEUE_BLOCK.index("DRAIN")] == keys.drain_key("orders")
