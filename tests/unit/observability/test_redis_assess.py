"""``assess``: Redis facts in, findings out (a table), and the reply parsing."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from jobqueue_protocol.health import Level
from jobqueue_protocol.redis_health import (
    RedisFacts,
    RedisThresholds,
    assess,
    facts_from_replies,
)

GOOD = RedisFacts(
    ping_ok=True,
    round_trip_s=0.001,
    version="7.2.4",
    mode="standalone",
    used_memory_bytes=100,
    maxmemory_bytes=1000,
    maxmemory_policy="noeviction",
    policy_source="config",
    aof_enabled=True,
    aof_last_write_ok=True,
    rdb_save="",
    rdb_last_bgsave_ok=True,
    rdb_saves=0,
    rdb_changes_since_last_save=0,
    rdb_last_save_time=0.0,
    connected_clients=5,
    blocked_clients=1,
    maxclients=10000,
)

CASES = [
    ("a safe server", {}, []),
    ("allkeys-lru evicts", {"maxmemory_policy": "allkeys-lru"}, [("warning", "eviction_policy")]),
    ("volatile-lru evicts", {"maxmemory_policy": "volatile-lru"}, [("warning", "eviction_policy")]),
    ("no AOF, RDB schedule", {"aof_enabled": False, "rdb_save": "3600 1"}, []),
    ("no AOF, no RDB", {"aof_enabled": False, "rdb_save": ""}, [("warning", "no_persistence")]),
    (
        "no AOF, CONFIG refused, no snapshot yet",
        {"aof_enabled": False, "rdb_save": None},
        [("warning", "persistence_unknown")],
    ),
    (
        "no AOF, CONFIG refused, snapshots seen",
        {"aof_enabled": False, "rdb_save": None, "rdb_saves": 3},
        [],
    ),
    ("79% of maxmemory", {"used_memory_bytes": 790}, []),
    ("80% of maxmemory", {"used_memory_bytes": 800}, [("warning", "memory")]),
    ("95% of maxmemory", {"used_memory_bytes": 950}, [("critical", "memory")]),
    ("no maxmemory", {"used_memory_bytes": 10**12, "maxmemory_bytes": 0}, []),
    ("AOF write failed", {"aof_last_write_ok": False}, [("critical", "aof_write_failed")]),
    ("RDB save failed", {"rdb_last_bgsave_ok": False}, [("warning", "rdb_save_failed")]),
    ("clients near maxclients", {"connected_clients": 9000}, [("warning", "clients")]),
    ("PING not PONG", {"ping_ok": False}, [("critical", "ping")]),
    (
        "worst first",
        {"maxmemory_policy": "allkeys-lru", "used_memory_bytes": 990},
        [("critical", "memory"), ("warning", "eviction_policy")],
    ),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_assess_table(changes: dict[str, object], expected: list[tuple[str, str]]) -> None:
    findings = assess(replace(GOOD, **changes))  # type: ignore[arg-type]
    assert [(f.level.value, f.code) for f in findings] == expected


def test_memory_message_says_what_happens_at_the_limit() -> None:
    (f,) = assess(replace(GOOD, used_memory_bytes=960))
    assert "enqueues will fail with OOM" in f.message
    (f, _) = assess(replace(GOOD, used_memory_bytes=960, maxmemory_policy="allkeys-lru"))
    assert "keys will be evicted" in f.message


def test_custom_memory_thresholds() -> None:
    t = RedisThresholds(memory_warning=0.5, memory_critical=0.6)
    assert [f.level for f in assess(replace(GOOD, used_memory_bytes=550), t)] == [Level.WARNING]


_INFO_MEMORY = {"used_memory": 2048, "maxmemory": 4096, "maxmemory_policy": "allkeys-lru"}
_INFO_PERSISTENCE = {
    "aof_enabled": 0,
    "rdb_last_bgsave_status": "ok",
    "rdb_saves": 2,
    "rdb_changes_since_last_save": 7,
    "rdb_last_save_time": 1700000000,
    "aof_last_write_status": "ok",
}
_INFO_CLIENTS = {"connected_clients": 3, "blocked_clients": 1, "maxclients": 100}
_INFO_SERVER = {"redis_version": "7.0.15", "redis_mode": "standalone"}


def test_replies_with_config_available() -> None:
    facts = facts_from_replies(
        [
            True,
            _INFO_MEMORY,
            _INFO_PERSISTENCE,
            _INFO_CLIENTS,
            _INFO_SERVER,
            {b"maxmemory-policy": b"volatile-ttl"},
            {"save": "3600 1 300 100"},
        ],
        0.002,
    )
    assert facts.maxmemory_policy == "volatile-ttl"
    assert facts.policy_source == "config"
    assert facts.rdb_save == "3600 1 300 100"
    assert facts.rdb_configured is True
    assert facts.memory_ratio == 0.5
    assert (facts.version, facts.connected_clients, facts.maxclients) == ("7.0.15", 3, 100)


def test_replies_with_config_refused_fall_back_to_info() -> None:
    refused = redis.ResponseError("NOPERM this user has no permissions to run the 'config' command")
    facts = facts_from_replies(
        [True, _INFO_MEMORY, _INFO_PERSISTENCE, _INFO_CLIENTS, _INFO_SERVER, refused, refused],
        0.002,
    )
    assert facts.maxmemory_policy == "allkeys-lru"
    assert facts.policy_source == "info"
    assert facts.rdb_save is None
    assert facts.rdb_configured is None


def test_an_info_error_is_raised() -> None:
    boom = redis.ResponseError("ERR unknown command")
    with pytest.raises(redis.ResponseError):
        facts_from_replies([True, boom, {}, {}, {}, {}, {}], 0.0)
