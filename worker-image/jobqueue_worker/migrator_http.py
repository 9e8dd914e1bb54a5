"""The migrator's HTTP face: /healthz for its liveness probe, /metrics for Prometheus.

The migrator takes no traffic, so there is no readiness: /healthz answers "is the
loop still making passes". A pass ends after each batch, after each wait for a
notification (at most the poll interval), and after each failed attempt (a
PostgreSQL or Redis outage is waited out with a back-off of at most 5 s, and
restarting would not end it). So a loop that has not passed for a minute, or ten
poll intervals if those are longer, is wedged, and a restart is the cure.

The counters are read from the migrator's own statistics at scrape time, in a
registry of their own: the migrator process serves no worker metrics.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobqueue_worker.http import metrics_response, serve
from jobqueue_worker.migrator import Migrator

#: The loop is wedged after this long without a pass (or ten poll intervals).
STALL_S = 60.0


class MigratorCollector(Collector):
    def __init__(self, migrator: Migrator) -> None:
        self._migrator = migrator

    def collect(self) -> Iterator[Metric]:
        stats = self._migrator.stats
        for name, value, doc in (
            ("jobqueue_migrator_rows_migrated", stats.migrated, "rows pushed into Redis"),
            ("jobqueue_migrator_batches", stats.batches, "batches that moved at least one row"),
            (
                "jobqueue_migrator_rows_repaired",
                stats.repaired,
                "open rows finished from Redis's record by the reconciler",
            ),
            (
                "jobqueue_migrator_errors",
                stats.errors,
                "failed passes (PostgreSQL or Redis unavailable), each retried",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily(
            "jobqueue_migrator_last_pass_age_seconds",
            "seconds since the loop last finished a pass (what /healthz judges)",
            value=pass_age_s(self._migrator),
        )


def pass_age_s(migrator: Migrator) -> float:
    return max(0.0, migrator.clock() - migrator.stats.last_pass)


def stalled(migrator: Migrator) -> bool:
    return pass_age_s(migrator) > max(STALL_S, 10 * migrator.poll_interval_s)


def make_app(migrator: Migrator) -> web.Application:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MigratorCollector(migrator))

    async def healthz(_: web.Request) -> web.Response:
        ok = not stalled(migrator)
        body = {"ok": ok, "last_pass_age_s": round(pass_age_s(migrator), 3)}
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return metrics_response(registry)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start(migrator: Migrator, host: str, port: int) -> web.AppRunner:
    return await serve(make_app(migrator), host, port)
