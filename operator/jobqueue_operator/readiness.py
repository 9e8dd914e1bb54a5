"""``/readyz``: the readiness probe, apart from kopf's liveness endpoint.

Liveness (kopf's ``/healthz``) says the process's event loop answers; a failing
liveness probe restarts the container. Readiness says this replica has finished
starting (settings read, API client made, defaults loaded), so the Service may
send it admission requests; a standby replica that is not the leader is ready
too, because every replica serves the webhook. Kept apart so a slow start is
never mistaken for a hung process, and a hung process never only drops out of
the Service.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web


async def serve(addr: str, port: int, state: Callable[[], dict[str, object]]) -> web.AppRunner:
    """Serve ``GET /readyz`` on ``addr:port``: 200 when ``state()["ready"]``, else 503."""

    async def readyz(_: web.Request) -> web.Response:
        body = state()
        return web.Response(
            status=200 if body.get("ready") else 503,
            text=json.dumps(body),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    return runner
