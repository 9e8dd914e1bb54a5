"""The ASGI application: routes, middleware (identity, headers, timing) and the sampler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobqueue_web import dlqviews, jobviews, login, pages
from jobqueue_web.auth import may_read
from jobqueue_web.config import WebConfig
from jobqueue_web.kube import Cluster
from jobqueue_web.reads import Reads, redis_problem, round_trips
from jobqueue_web.samples import Sample, SampleBuffer
from jobqueue_web.security import HEADERS, VISITOR_COOKIE, identify

log = logging.getLogger("jobqueue_web")

_OPEN_PATHS = ("/login", "/static/", "/healthz", "/favicon.ico")


class Gate(BaseHTTPMiddleware):
    """Who is asking, whether they may look, and the headers every answer carries."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        trips = [0]
        round_trips.set(trips)
        state = request.app.state
        caller = identify(request, state.config.auth, state.secret)
        request.state.caller = caller
        is_open = request.url.path.startswith(_OPEN_PATHS)
        response: Response
        if not is_open and not may_read(caller.role, state.config.auth):
            if request.method == "GET" and not caller.by_bearer:
                response = RedirectResponse("/login", status_code=303)
            else:
                response = PlainTextResponse("sign in first\n", status_code=401)
        else:
            try:
                response = await call_next(request)
            except Exception as exc:
                reason = redis_problem(exc)
                if reason is None:
                    raise
                response = PlainTextResponse(f"Redis is unavailable: {reason}\n", 503)
        for name, value in HEADERS.items():
            response.headers[name] = value
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        took_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = (
            f'app;dur={took_ms:.2f}, redis;desc="round trips";dur={trips[0]}'
        )
        if caller.new_visitor and caller.visitor:
            response.set_cookie(
                VISITOR_COOKIE,
                caller.visitor,
                httponly=True,
                samesite="strict",
                secure=state.config.secure_cookies,
            )
        return response


async def sample_once(reads: Reads, buffer: SampleBuffer, stale_s: float) -> None:
    queues = await reads.queues(rescan=True)
    if not queues:
        return
    stats = await reads.stats(queues, stale_s)
    for q, st in stats.items():
        c = st.counters
        buffer.add(
            q,
            Sample(
                at=round(st.server_time, 3),
                waiting=st.waiting,
                delayed=st.delayed,
                in_flight=st.in_flight,
                dead=st.dead,
                workers=len(st.workers),
                enqueued_total=c.get("enqueued", 0),
                finished_total=c.get("completed", 0) + c.get("dead", 0),
            ),
        )


async def _sampler(reads: Reads, buffer: SampleBuffer, config: WebConfig) -> None:
    while True:
        try:
            await sample_once(reads, buffer, config.heartbeat_stale_s)
        except Exception as exc:  # Redis away: keep the loop, the pages say so
            log.warning("sampling failed: %s", redis_problem(exc) or exc)
        await asyncio.sleep(config.sample_interval_s)


def _static() -> StaticFiles:
    return StaticFiles(directory=str(resources.files("jobqueue_web") / "static"))


def create_app(config: WebConfig, secret: bytes | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reads = Reads(config.redis_url, config.queues)
        cluster = Cluster(config.kube_namespace)
        if config.kube_enabled:
            await cluster.start()
        else:
            cluster.problem = "cluster access is off (--no-kube)"
        app.state.reads = reads
        app.state.cluster = cluster
        task = asyncio.create_task(_sampler(reads, app.state.samples, config))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await cluster.close()
            await reads.close()

    routes = [
        Route("/", pages.overview),
        Route("/fragments/overview", pages.overview_rows),
        Route("/api/samples", pages.samples_json),
        Route("/workers", pages.workers),
        Route("/scaling", pages.scaling),
        Route("/jobs", jobviews.search),
        Route("/jobs/{queue}/{job_id}", jobviews.job_page),
        Route("/dlq", dlqviews.dlq_index),
        Route("/dlq/{queue}", dlqviews.dlq_page),
        Route("/dlq/{queue}/action", dlqviews.dlq_action, methods=["POST"]),
        Route("/login", login.login_form),
        Route("/login", login.login_submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/healthz", pages.healthz),
        Route("/favicon.ico", pages.no_icon),
        Mount("/static", app=_static(), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Gate)], lifespan=lifespan)
    app.state.config = config
    app.state.secret = secret or secrets.token_bytes(32)
    app.state.samples = SampleBuffer()
    return app
