"""The worker's HTTP face for Kubernetes: /healthz, /readyz, /metrics.

/healthz answers "is this process making progress": the event loop ticks and
the heartbeat reached Redis within ``heartbeat_ttl_s`` (after that the
operator no longer counts the worker as alive, so neither should Kubernetes).
/readyz answers "count me": Redis reachable and not draining.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from jobqueue_worker.runtime import Worker


def make_app(worker: Worker) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        now = time.monotonic()
        tick_age = now - worker.last_heartbeat_tick
        beat_age = now - worker.last_heartbeat_ok
        loop_alive = tick_age < 3 * worker.settings.heartbeat_interval_s + 5
        # The operator stops counting a worker whose heartbeat is older than the
        # TTL; a worker that cannot publish one for that long is restarted.
        heartbeat_fresh = beat_age < worker.settings.heartbeat_ttl_s
        ok = loop_alive and heartbeat_fresh
        return web.json_response(
            {
                "ok": ok,
                "loop_alive": loop_alive,
                "heartbeat_fresh": heartbeat_fresh,
                "heartbeat_age_s": round(beat_age, 3),
                "state": worker.state,
            },
            status=200 if ok else 503,
        )

    async def readyz(_: web.Request) -> web.Response:
        if worker.draining:
            return web.json_response({"ok": False, "reason": "draining"}, status=503)
        try:
            reachable = await worker.broker.ping()
        except Exception as exc:
            return web.json_response({"ok": False, "reason": f"redis: {exc!r}"}, status=503)
        return web.json_response({"ok": reachable}, status=200 if reachable else 503)

    async def metrics(_: web.Request) -> web.Response:
        return metrics_response(REGISTRY)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def metrics_response(registry: CollectorRegistry) -> web.Response:
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start(worker: Worker, host: str, port: int) -> web.AppRunner:
    return await serve(make_app(worker), host, port)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
