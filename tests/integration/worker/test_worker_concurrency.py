"""Per-type concurrency caps under load, and invalid settings refused at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from jobqueue_protocol import keys
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.registry import Job, Registry
from jobqueue_worker.runtime import Worker

pytestmark = pytest.mark.redis

StartWorker = Callable[..., Awaitable[Worker]]


async def test_per_type_concurrency_caps_hold_under_load(
    redis_url: str, start_worker: StartWorker, until: Any
) -> None:
    caps = {"notifications": 3, "email": 2, "asset_processing": 1}
    running: dict[str, int] = dict.fromkeys([*caps, "search_indexing"], 0)
    peak = dict(running)
    done: list[str] = []
    reg = Registry()

    def make(name: str) -> None:
        async def handler(job: Job) -> None:
            running[name] += 1
            peak[name] = max(peak[name], running[name])
            await asyncio.sleep(0.02)
            running[name] -= 1
            done.append(name)

        reg.register(name, handler)

    for name in running:
        make(name)
    n = 30
    # Capped types first, so an uncapped type has to be found behind them.
    async with Producer(redis_url) as p:
        await p.enqueue_many(
            [
                JobRequest(type=t)
                for t in ("asset_processing", "email", "notifications")
                for _ in range(n)
            ]
            + [JobRequest(type="search_indexing") for _ in range(n)]
        )
    w = await start_worker(
        reg,
        concurrency=12,
        type_concurrency={k.upper(): v for k, v in caps.items()},
    )

    async def all_done() -> bool:
        return len(done) == 4 * n

    await until(all_done, 60)
    print(f"\nper-type peaks {peak} (caps {caps}, total 12); {w.step_calls} step calls")
    for name, cap in caps.items():
        assert peak[name] == cap  # reached, never exceeded
    assert peak["search_indexing"] > 1  # uncapped types use the remaining slots
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    assert int(await r.hget(keys.counters_key("default"), "completed") or 0) == 4 * n
    await r.aclose()


# Each invalid setting, the variable the message must name, and a word of what it expects.
INVALID = [
    ({"RATE_LIMIT_EMAIL": "300/fortnight"}, "RATE_LIMIT_EMAIL", "second|minute|hour|day"),
    ({"RATE_LIMIT_EMAIL": "0/minute"}, "RATE_LIMIT_EMAIL", "≥ 1"),
    ({"RATE_LIMIT_EMAIL": "5/second:leaky"}, "RATE_LIMIT_EMAIL", "sliding|bucket|fixed"),
    ({"RATE_LIMIT_EMAIL": "5/second:fixed:9"}, "RATE_LIMIT_EMAIL", "burst"),
    ({"WORKER_CONCURRENCY_EMAIL": "0"}, "WORKER_CONCURRENCY_EMAIL", "greater than or equal to 1"),
    ({"WORKER_CONCURRENCY_EMAIL": "many"}, "WORKER_CONCURRENCY_EMAIL", "integer"),
    (
        {"WORKER_CONCURRENCY_EMAIL": "50", "JQW_CONCURRENCY": "20"},
        "WORKER_CONCURRENCY_EMAIL",
        "JQW_CONCURRENCY",
    ),
    ({"TIMEOUT_EMAIL": "-3"}, "TIMEOUT_EMAIL", "greater than 0"),
    ({"TIMEOUT_EMAIL": "soon"}, "TIMEOUT_EMAIL", "number"),
    ({"TIMEOUT_EMAIL": "10", "SOFT_TIMEOUT_EMAIL": "12"}, "SOFT_TIMEOUT_EMAIL", "below"),
    ({"WORKER_MEMORY_HARD_LIMIT": "lots"}, "WORKER_MEMORY_HARD_LIMIT", "512Mi"),
    ({"WORKER_MEMORY_SOFT_LIMIT": "-1Gi"}, "WORKER_MEMORY_SOFT_LIMIT", "size"),
    (
        {"WORKER_MEMORY_SOFT_LIMIT": "1G", "WORKER_MEMORY_HARD_LIMIT": "512Mi"},
        "WORKER_MEMORY_SOFT_LIMIT",
        "below",
    ),
    ({"WORKER_RECYCLE_AFTER_JOBS": "0"}, "WORKER_RECYCLE_AFTER_JOBS", "greater than or equal to 1"),
    ({"WORKER_RECYCLE_AFTER_HOURS": "never"}, "WORKER_RECYCLE_AFTER_HOURS", "number"),
    ({"JOB_MEMORY_EMAIL": "big"}, "JOB_MEMORY_EMAIL", "512Mi"),
    ({"JQW_SOFT_TIMEOUT_RATIO": "1.5"}, "JQW_SOFT_TIMEOUT_RATIO", "less than 1"),
    ({"JQW_TIMEOUT_BACKOFF_MULTIPLIER": "0.5"}, "JQW_TIMEOUT_BACKOFF_MULTIPLIER", "1"),
    ({"JQW_ADAPTIVE_FACTOR": "0"}, "JQW_ADAPTIVE_FACTOR", "greater than or equal to 1"),
    ({"JQW_CONFIG_FILE": "/nonexistent/worker.env"}, "JQW_CONFIG_FILE", "no such file"),
]


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    prefixes = ("JQW_", "RATE_LIMIT_", "WORKER_", "TIMEOUT_", "SOFT_TIMEOUT_", "JOB_MEMORY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


@pytest.mark.parametrize(("env", "variable", "expects"), INVALID, ids=[i[1] for i in INVALID])
def test_invalid_setting_is_refused_naming_the_variable(
    env: dict[str, str], variable: str, expects: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobqueue_worker.settings import load

    for k in list(os.environ):
        if k.startswith(("JQW_", "RATE_LIMIT_", "WORKER_", "TIMEOUT_", "SOFT_TIMEOUT_", "JOB_")):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        load()
    message = str(info.value)
    assert f"{variable}:" in message
    assert expects in message


def test_a_setting_for_an_unknown_job_type_is_refused(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobqueue_worker import examples
    from jobqueue_worker.settings import load

    monkeypatch.setenv("RATE_LIMIT_SEND_EMAILS", "5/second")  # a typo: no such type
    with pytest.raises(ConfigError, match="RATE_LIMIT_SEND_EMAILS: no registered job type"):
        Worker(load(redis_url=redis_url, http_port=0), examples.registry)


def test_the_worker_process_exits_at_start_with_the_message(redis_url: str) -> None:
    env = _clean_env(
        {
            "JQW_REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join(
                os.path.join(os.path.dirname(__file__), "../../../worker-image", sub)
                for sub in ("", "protocol")
            ),
            "RATE_LIMIT_NOOP": "300/minute,10000/hour,lots/day",
            "WORKER_MEMORY_HARD_LIMIT": "1 gigabyte",
        }
    )
    res = subprocess.run(
        [sys.executable, "-m", "jobqueue_worker", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "RATE_LIMIT_NOOP" in out
    assert "WORKER_MEMORY_HARD_LIMIT" in out


def test_seed_settings_from_a_config_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobqueue_worker.settings import load

    cfg = tmp_path / "worker.env"
    cfg.write_text(
        "RATE_LIMIT_EMAIL=300/minute,10000/hour,100000/day\n"
        "WORKER_CONCURRENCY_EMAIL=15\nWORKER_CONCURRENCY_NOTIFICATIONS=10\n"
        "TIMEOUT_EMAIL=30\nWORKER_MEMORY_SOFT_LIMIT=400Mi\nWORKER_MEMORY_HARD_LIMIT=512Mi\n"
        "WORKER_RECYCLE_AFTER_JOBS=1000\nWORKER_RECYCLE_AFTER_HOURS=6\nJQW_CONCURRENCY=40\n"
    )
    for k in list(os.environ):
        if k.startswith(("JQW_", "RATE_LIMIT_", "WORKER_", "TIMEOUT_", "SOFT_TIMEOUT_", "JOB_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("JQW_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("TIMEOUT_EMAIL", "45")  # the environment wins over the file
    s = load()
    assert [lim.limit for lim in s.limits_for("email")] == [300, 10_000, 100_000]
    assert s.concurrency_for("email") == 15
    assert s.concurrency_for("notifications") == 10
    assert s.timeout_for("email") == 45
    assert (s.memory_soft_limit, s.memory_hard_limit) == (400 * 1024**2, 512 * 1024**2)
    assert (s.recycle_after_jobs, s.recycle_after_hours, s.concurrency) == (1000, 6, 40)
