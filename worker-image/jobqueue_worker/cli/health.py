"""``jobqueue health``: is each queue, and the Redis under it, healthy?

A person reads the table; a script or a CronJob reads ``--json`` and the exit
code (0 healthy, 1 warning, 2 critical, like a Nagios check), so an alert can be
built without Prometheus. The verdicts come from the shared pure functions
(``jobqueue_protocol.health.queue_health`` and
``jobqueue_protocol.redis_health.assess``), so this command, the operator and the
PrometheusRule's defaults agree on what "warning" means.

Two pipelined reads: the queue statistics (``Broker.stats``, one round trip for
all queues) and the Redis facts (one round trip). ``--sample S`` reads the
statistics a second time after S seconds and shows the job counts of that
window; without it the counters are totals since the queue was created.

``register(app)`` adds the command to the ``jobqueue`` app.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from jobqueue_protocol.health import Health, Level, Thresholds, queue_health, worst
from jobqueue_protocol.logformat import redact_url as redact
from jobqueue_protocol.redis_health import Finding, RedisFacts, assess
from jobqueue_protocol.stats import QueueStats
from jobqueue_worker.broker import Broker
from jobqueue_worker.cli.common import depth_cells
from jobqueue_worker.cli.options import DEFAULT_REDIS_URL, JsonOpt, QueuesOpt, RedisUrl, env_queues

EXIT_CODES = {Level.HEALTHY: 0, Level.WARNING: 1, Level.CRITICAL: 2}
_COLOURS = {Level.HEALTHY: "green", Level.WARNING: "yellow", Level.CRITICAL: "red"}
COUNTERS = ("enqueued", "completed", "failed", "retried", "dead")


async def _read(
    redis_url: str, queues: list[str], sample_s: float
) -> tuple[RedisFacts | None, str | None, dict[str, QueueStats], dict[str, dict[str, int]] | None]:
    broker = Broker(redis_url, socket_timeout_s=5.0)
    try:
        try:
            facts = await broker.server_facts()
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}", {}, None
        stats = await broker.stats(queues)
        recent = None
        if sample_s > 0:
            await asyncio.sleep(sample_s)
            later = await broker.stats(queues)
            recent = {
                q: {c: later[q].counters.get(c, 0) - stats[q].counters.get(c, 0) for c in COUNTERS}
                for q in queues
            }
            stats = later
        return facts, None, stats, recent
    finally:
        await broker.close()


def _finding_json(f: Finding) -> dict[str, str]:
    return {"level": f.level.value, "code": f.code, "message": f.message}


def _queue_json(
    s: QueueStats, h: Health, recent: dict[str, int] | None, sample_s: float
) -> dict[str, Any]:
    return {
        "queue": s.queue,
        "level": h.level.value,
        "reasons": [_finding_json(r) for r in h.reasons],
        "waiting": s.waiting,
        "waiting_by_priority": {str(p): n for p, n in s.waiting_by_priority.items()},
        "delayed": s.delayed,
        "delayed_due": s.delayed_due,
        "in_flight": s.in_flight,
        "dead": s.dead,
        "oldest_age_s": round(s.oldest_age_s(), 3),
        "workers_alive": len(s.workers),
        "workers": [
            {
                "worker_id": w.worker_id,
                "state": w.state,
                "active_jobs": w.active_jobs,
                "rss_bytes": w.rss_bytes,
                "pod_name": w.pod_name,
            }
            for w in s.workers
        ],
        "counters_total": {c: s.counters.get(c, 0) for c in COUNTERS},
        "recent": None if recent is None else {"window_s": sample_s, **recent},
    }


def report(
    redis_url: str,
    facts: RedisFacts | None,
    error: str | None,
    stats: dict[str, QueueStats],
    recent: dict[str, dict[str, int]] | None,
    *,
    thresholds: Thresholds,
    sample_s: float = 0.0,
) -> dict[str, Any]:
    """The whole verdict as plain data (what ``--json`` prints); pure."""
    if facts is None:
        findings = [Finding(Level.CRITICAL, "unreachable", f"cannot read Redis: {error}")]
    else:
        findings = assess(facts)
    verdicts = {q: queue_health(s, thresholds) for q, s in stats.items()}
    redis_level = worst(f.level for f in findings)
    overall = worst([redis_level, *(h.level for h in verdicts.values())])
    return {
        "level": overall.value,
        "redis": {
            "url": redact(redis_url),
            "reachable": facts is not None,
            "level": redis_level.value,
            "findings": [_finding_json(f) for f in findings],
            "facts": None if facts is None else asdict(facts),
        },
        "queues": [
            _queue_json(s, verdicts[q], None if recent is None else recent[q], sample_s)
            for q, s in stats.items()
        ],
    }


def _level_text(level: str) -> str:
    return f"[{_COLOURS[Level(level)]}]{level}[/]"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _print(console: Console, data: dict[str, Any]) -> None:
    redis = data["redis"]
    table = Table(title=f"Redis {redis['url']}: {_level_text(redis['level'])}", show_header=False)
    table.add_column("fact")
    table.add_column("value")
    facts = redis["facts"]
    if facts is not None:
        limit = facts["maxmemory_bytes"]
        memory = _mib(facts["used_memory_bytes"])
        memory += f" of {_mib(limit)} ({facts['used_memory_bytes'] / limit:.0%})" if limit else ""
        memory += "" if limit else " (no maxmemory)"
        rdb = facts["rdb_save"]
        rows = [
            (
                "ping",
                ("PONG" if facts["ping_ok"] else "no PONG")
                + f" in {facts['round_trip_s'] * 1000:.1f} ms",
            ),
            ("version", f"{facts['version']} ({facts['mode']})"),
            ("memory", memory),
            ("eviction policy", f"{facts['maxmemory_policy']} (from {facts['policy_source']})"),
            ("AOF", "on" if facts["aof_enabled"] else "off"),
            ("RDB save", "unknown (CONFIG unavailable)" if rdb is None else (rdb or "off")),
            (
                "clients",
                f"{facts['connected_clients']} connected, {facts['blocked_clients']} blocked",
            ),
        ]
        for k, v in rows:
            table.add_row(k, v)
    for f in redis["findings"]:
        table.add_row(_level_text(f["level"]), f["message"])
    console.print(table)

    queues = Table(title="queues")
    recent = any(q["recent"] is not None for q in data["queues"])
    counts = "last {:g} s".format(data["queues"][0]["recent"]["window_s"]) if recent else "total"
    for col in (
        "queue",
        "health",
        "waiting",
        "by priority",
        "delayed",
        "in flight",
        "dead",
        "oldest s",
        "workers",
        f"done/failed/retried/dead ({counts})",
        "reasons",
    ):
        queues.add_column(col)
    for q in data["queues"]:
        c = q["recent"] if q["recent"] is not None else q["counters_total"]
        queues.add_row(
            q["queue"],
            _level_text(q["level"]),
            *depth_cells(q),
            str(q["workers_alive"]),
            f"{c['completed']}/{c['failed']}/{c['retried']}/{c['dead']}",
            "; ".join(r["message"] for r in q["reasons"]) or "-",
        )
    if data["queues"]:
        console.print(queues)
    console.print(f"overall: {_level_text(data['level'])}")


def health(  # noqa: PLR0917 - typer maps parameters to options
    queue: QueuesOpt = None,
    redis_url: RedisUrl = DEFAULT_REDIS_URL,
    as_json: JsonOpt = False,
    sample: Annotated[
        float, typer.Option(min=0, max=300, help="seconds between two reads for recent counts")
    ] = 0.0,
    depth_warning: Annotated[int, typer.Option(min=0)] = 200,
    depth_critical: Annotated[int, typer.Option(min=0)] = 500,
    age_warning: Annotated[float, typer.Option(min=0, help="oldest-job age, seconds")] = 300.0,
    age_critical: Annotated[float, typer.Option(min=0)] = 900.0,
) -> None:
    """Each queue healthy, warning or critical with the reasons, and Redis's health.

    Exit code: 0 healthy, 1 warning, 2 critical (also when Redis is unreachable).
    """
    try:
        thresholds = Thresholds(
            depth_warning=depth_warning,
            depth_critical=depth_critical,
            oldest_age_warning_s=age_warning,
            oldest_age_critical_s=age_critical,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    queues = list(dict.fromkeys(env_queues(queue)))
    facts, error, stats, recent = asyncio.run(_read(redis_url, queues, sample))
    data = report(redis_url, facts, error, stats, recent, thresholds=thresholds, sample_s=sample)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(Console(), data)
    raise typer.Exit(EXIT_CODES[Level(data["level"])])


def register(app: typer.Typer) -> None:
    """Add ``health`` to the ``jobqueue`` app (``cli.py`` calls this once)."""
    app.command("health")(health)
