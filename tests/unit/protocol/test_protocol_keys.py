"""Golden key strings: changing one of these is a breaking change (new prefix)."""

import pytest

from jobqueue_protocol import keys


def test_golden_key_strings() -> None:
    q = "email:processing"
    assert keys.ready_key(q, 1) == "jq:v1:{email:processing}:ready:1"
    assert keys.ready_key(q, 10) == "jq:v1:{email:processing}:ready:10"
    assert keys.delayed_key(q) == "jq:v1:{email:processing}:delayed"
    assert keys.lease_key(q) == "jq:v1:{email:processing}:leases"
    assert keys.dead_key(q) == "jq:v1:{email:processing}:dead"
    assert keys.job_key(q, "abc") == "jq:v1:{email:processing}:job:abc"
    assert keys.job_key_prefix(q) == "jq:v1:{email:processing}:job:"
    assert keys.idem_key(q, "k1") == "jq:v1:{email:processing}:idem:k1"
    assert keys.idem_key_prefix(q) == "jq:v1:{email:processing}:idem:"
    assert keys.workers_key(q) == "jq:v1:{email:processing}:workers"
    assert keys.counters_key(q) == "jq:v1:{email:processing}:counters"
    assert keys.wake_key(q) == "jq:v1:{email:processing}:wake"
    assert keys.reaper_key(q) == "jq:v1:{email:processing}:reaper"
    assert keys.drain_key(q) == "jq:v1:{email:processing}:drain"


def test_priorities_and_named_levels() -> None:
    assert keys.PRIORITIES == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
    assert (keys.CRITICAL, keys.HIGH, keys.NORMAL, keys.LOW, keys.BACKGROUND) == (1, 3, 5, 7, 10)
    assert keys.ready_keys("q") == tuple(f"jq:v1:{{q}}:ready:{p}" for p in range(1, 11))


def test_every_key_of_a_queue_shares_one_hash_tag() -> None:
    q = "orders"
    all_keys = [
        *keys.ready_keys(q),
        keys.delayed_key(q),
        keys.lease_key(q),
        keys.dead_key(q),
        keys.job_key(q, "x"),
        keys.idem_key(q, "y"),
        keys.workers_key(q),
        keys.counters_key(q),
        keys.wake_key(q),
        keys.reaper_key(q),
        keys.drain_key(q),
    ]
    for k in all_keys:
        assert k.startswith("jq:v1:{orders}:")
        assert k[k.index("{") + 1 : k.index("}")] == "orders"


@pytest.mark.parametrize("bad", [0, 11, -1, 5.0, True])
def test_out_of_range_priority_is_rejected_not_clamped(bad: object) -> None:
    with pytest.raises(keys.InvalidKeyPartError):
        keys.ready_key("q", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "a b", "x" * 201, "a\nb"])
def test_bad_queue_names_are_rejected(bad: str) -> None:
    with pytest.raises(keys.InvalidKeyPartError):
        keys.delayed_key(bad)


def test_bad_ids_are_rejected() -> None:
    with pytest.raises(keys.InvalidKeyPartError):
        keys.job_key("q", "")
    with pytest.raises(keys.InvalidKeyPartError):
        keys.idem_key("q", "a\nb")


def test_golden_limiter_keys_global_per_queue_and_per_name() -> None:
    assert keys.limiter_key("send_email", "300/60000ms:sliding") == (
        "jq:v1:{limits}:rl:send_email:300/60000ms:sliding"
    )
    assert keys.named_limiter_key("smtp", "5/1000ms:bucket:20") == (
        "jq:v1:{rl:smtp}:5/1000ms:bucket:20"
    )
    assert keys.limiter_stats_key() == "jq:v1:{limits}:rl-stats"
    # Per queue (Redis Cluster): in the queue's own slot.
    assert keys.limiter_key("send_email", "1/1000ms:sliding", "mail") == (
        "jq:v1:{mail}:rl:send_email:1/1000ms:sliding"
    )
    assert keys.limiter_stats_key("mail") == "jq:v1:{mail}:rl-stats"
    assert keys.exec_stats_key("email:processing") == "jq:v1:{email:processing}:exec"
    with pytest.raises(keys.InvalidKeyPartError):
        keys.limiter_key("bad}type", "1/1000ms:sliding")
