"""The ceiling: what Redis itself does here for the commands a job costs (redis-benchmark).

Runs Debian's ``redis-benchmark`` (redis-tools) against the benchmark Redis for PING, a small
Lua script through EVALSHA, a four-call "job step" script through EVALSHA (pop a ready id, add
a lease, write the job hash, like our fetch/complete script), ZADD, ZPOPMIN, HSET, LPUSH and
RPOP, each three ways: one connection (round-trip bound), 10 connections (server bound) and
10 connections pipelined 16 deep. ``job_bound`` turns a job's measured round trips and command
mix into the jobs/s upper bound Redis allows.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from bench.redis_server import RedisServer

SMALL_SCRIPT = "return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])"
STEP_SCRIPT = (
    "local id = redis.call('ZPOPMIN', KEYS[1]) "
    "if id[1] == nil then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) id = {ARGV[2]} end "
    "redis.call('ZADD', KEYS[2], ARGV[1], id[1]) "
    "redis.call('HSET', KEYS[3], 'lease', ARGV[1], 'state', 'active') "
    "return id[1]"
)

CONFIGS: tuple[tuple[str, int, int], ...] = (
    ("1 conn", 1, 1),
    ("10 conns", 10, 1),
    ("10 conns, pipeline 16", 10, 16),
)


@dataclass
class CeilingRow:
    test: str
    config: str
    clients: int
    pipeline: int
    rps: float
    avg_ms: float | None


def apt_install(binary: str, package: str) -> str | None:
    """Path to ``binary``; ``apt-get install -y package`` first when root and it is missing
    (with one ``apt-get update`` if the first install fails)."""
    path = shutil.which(binary)
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    install = ["apt-get", "install", "-y", "-q", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, check=False, timeout=600, capture_output=True, env=env)
    if done.returncode != 0:
        subprocess.run(
            ["apt-get", "update", "-q"], check=False, timeout=600, capture_output=True, env=env
        )
        subprocess.run(install, check=False, timeout=600, capture_output=True, env=env)
    return shutil.which(binary)


def ensure_redis_benchmark() -> str | None:
    """Path to redis-benchmark (Debian's redis-tools)."""
    return apt_install("redis-benchmark", "redis-tools")


def _tests(server: RedisServer) -> list[tuple[str, list[str]]]:
    small = str(server.client.script_load(SMALL_SCRIPT))
    step = str(server.client.script_load(STEP_SCRIPT))
    return [
        ("PING", ["-t", "ping_mbulk"]),
        ("EVALSHA small (1 call)", ["evalsha", small, "1", "bz:s", "1", "m"]),
        (
            "EVALSHA step (4 calls)",
            ["evalsha", step, "3", "bz:ready", "bz:lease", "bz:job", "__rand_int__", "j"],
        ),
        ("ZADD", ["zadd", "bz:z", "__rand_int__", "m:__rand_int__"]),
        ("ZPOPMIN", ["zpopmin", "bz:z"]),
        ("HSET", ["hset", "bz:h:__rand_int__", "f", "v"]),
        ("LPUSH", ["lpush", "bz:l", "v"]),
        ("RPOP", ["rpop", "bz:l"]),
    ]


def run(server: RedisServer, requests: int) -> list[CeilingRow]:
    binary = ensure_redis_benchmark()
    if binary is None:
        raise RuntimeError("redis-benchmark not found and could not be installed (redis-tools)")
    rows: list[CeilingRow] = []
    for label, clients, pipeline in CONFIGS:
        server.flush()
        n = requests if clients > 1 else max(1000, requests // 5)
        for test, args in _tests(server):
            cmd = [
                binary,
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-n",
                str(n * pipeline if pipeline > 1 else n),
                "-c",
                str(clients),
                "-P",
                str(pipeline),
                "-r",
                "100000",
                "--csv",
                *args,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            for rec in csv.DictReader(io.StringIO(proc.stdout)):
                rps = float(rec.get("rps", 0) or 0)
                avg = rec.get("avg_latency_ms")
                rows.append(
                    CeilingRow(test, label, clients, pipeline, rps, float(avg) if avg else None)
                )
    return rows


# Which redis-benchmark test stands for each command seen in a job's commandstats mix.
# Commands without a close match use the slowest simple-command test (conservative).
COMMAND_TESTS: dict[str, str] = {
    "evalsha": "EVALSHA small (1 call)",
    "eval": "EVALSHA small (1 call)",
    "fcall": "EVALSHA small (1 call)",
    "zadd": "ZADD",
    "zrem": "ZADD",
    "zincrby": "ZADD",
    "zpopmin": "ZPOPMIN",
    "zrangebyscore": "ZPOPMIN",
    "zrange": "ZPOPMIN",
    "zcard": "ZPOPMIN",
    "zscore": "ZPOPMIN",
    "bzpopmin": "ZPOPMIN",
    "hset": "HSET",
    "hmset": "HSET",
    "hincrby": "HSET",
    "hget": "HSET",
    "hmget": "HSET",
    "hgetall": "HSET",
    "hdel": "HSET",
    "lpush": "LPUSH",
    "rpush": "LPUSH",
    "lpop": "RPOP",
    "rpop": "RPOP",
    "lmove": "RPOP",
    "blmove": "RPOP",
    "rpoplpush": "RPOP",
    "brpop": "RPOP",
    "blpop": "RPOP",
    "lrem": "RPOP",
    "llen": "RPOP",
    "ping": "PING",
    "time": "PING",
    "watch": "PING",
    "multi": "PING",
    "exec": "PING",
    "exists": "ZPOPMIN",
    "get": "ZPOPMIN",
    "set": "HSET",
    "psetex": "HSET",
    "pexpire": "HSET",
    "expire": "HSET",
    "del": "HSET",
    "incr": "HSET",
    "sadd": "ZADD",
    "srem": "ZADD",
    "publish": "LPUSH",
    "xadd": "LPUSH",
    "xack": "ZADD",
    "xreadgroup": "RPOP",
}
SIMPLE_TESTS = ("ZADD", "ZPOPMIN", "HSET", "LPUSH", "RPOP")


def job_bound(
    rows: list[dict[str, object]],
    mix: dict[str, float],
    round_trips: float,
    request_config: str,
    exec_config: str = "10 conns, pipeline 16",
) -> tuple[float | None, list[str]]:
    """Jobs/s bound for a job costing ``round_trips`` requests and the command ``mix``.

    Per job, Redis pays ``round_trips`` requests at the PING cost of ``request_config``
    (network, parsing, event loop: "1 conn" is a sequential client, "10 conns" a busy server)
    plus each command's execution at its pipelined cost (``exec_config``, where per-request
    overhead is amortised), script-internal calls included. The bound is 1 / that time.
    Returns the bound and the commands that had no close stand-in (costed as the slowest
    simple command).
    """
    rps: dict[tuple[str, str], float] = {
        (str(r["test"]), str(r["config"])): float(r["rps"])  # type: ignore[arg-type]
        for r in rows
    }
    ping = rps.get(("PING", request_config), 0.0)
    exec_rps = {t: v for (t, c), v in rps.items() if c == exec_config}
    if ping <= 0 or not exec_rps:
        return None, []
    slowest = min((exec_rps[t] for t in SIMPLE_TESTS if t in exec_rps), default=0.0)
    seconds = round_trips / ping
    unmapped: list[str] = []
    for cmd, per_job in mix.items():
        test = COMMAND_TESTS.get(cmd.split("|")[0])
        if test is None:
            unmapped.append(cmd)
        r = exec_rps.get(test or "", slowest)
        if r <= 0:
            return None, unmapped
        seconds += per_job / r
    return (1.0 / seconds if seconds > 0 else None), unmapped


def bound(rows: list[CeilingRow], test: str, config: str, per_job: float) -> float | None:
    """Jobs/s upper bound if each job needs ``per_job`` of ``test`` under ``config``."""
    for r in rows:
        if r.test == test and r.config == config and r.rps > 0 and per_job > 0:
            return r.rps / per_job
    return None


def paced_round_trips(server: RedisServer, n: int = 500, rate: float = 100.0) -> dict[str, float]:
    """PING at ``rate`` per second on one connection: the cost of a lone round trip.

    At 100 jobs/s the processes sleep between requests, so every round trip pays
    the wake-up of both sides; this is the floor under each step of the latency
    path (enqueue, wake-up, fetch), which redis-benchmark's back-to-back numbers hide.
    """
    samples: list[float] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        for i in range(n):
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise RuntimeError("redis closed the connection during the paced PINGs")
                reply += chunk
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "n": float(n),
        "rate": rate,
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }
