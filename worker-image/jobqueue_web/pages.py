"""Overview, Workers and Scaling: what the queues, the workers and the autoscaler look like now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from jobqueue_protocol import keys
from jobqueue_web.reads import Reads
from jobqueue_web.render import page
from jobqueue_web.samples import Sample, SampleBuffer, rates

if TYPE_CHECKING:
    from jobqueue_protocol.stats import QueueStats, WorkerHeartbeat


@dataclass(frozen=True)
class QueueRow:
    stats: QueueStats
    enqueue_rate: float | None
    finish_rate: float | None


async def _rows(request: Request) -> list[QueueRow]:
    reads: Reads = request.app.state.reads
    buffer: SampleBuffer = request.app.state.samples
    queues = await reads.queues()
    stats = await reads.stats(queues, request.app.state.config.heartbeat_stale_s)
    out = []
    for q in queues:
        st = stats[q]
        r = rates(buffer.series(q), st.server_time)
        out.append(QueueRow(st, r[0] if r else None, r[1] if r else None))
    return out


async def overview(request: Request) -> Response:
    rows = await _rows(request)
    return page(request, "overview.html", rows=rows, priorities=keys.PRIORITIES, nav="overview")


async def overview_rows(request: Request) -> Response:
    """The table body alone, which htmx swaps in every few seconds."""
    rows = await _rows(request)
    return page(request, "overview_rows.html", rows=rows, priorities=keys.PRIORITIES)


def _columns(rows: list[Sample]) -> dict[str, list[float]]:
    return {
        "at": [s.at for s in rows],
        "waiting": [float(s.waiting) for s in rows],
        "in_flight": [float(s.in_flight) for s in rows],
        "dead": [float(s.dead) for s in rows],
        "workers": [float(s.workers) for s in rows],
    }


async def samples_json(request: Request) -> Response:
    """The last hour for the charts: one queue (``?queue=``) or all of them summed."""
    buffer: SampleBuffer = request.app.state.samples
    queue = request.query_params.get("queue")
    if queue:
        try:
            keys.validate_queue(queue)
        except ValueError as exc:
            return PlainTextResponse(f"queue: {exc}\n", status_code=400)
        return JSONResponse(_columns(buffer.series(queue)))
    return JSONResponse(_columns(buffer.total(buffer.queues())))


@dataclass(frozen=True)
class WorkerRow:
    queue: str
    hb: WorkerHeartbeat
    age_s: float
    stale: bool


async def workers(request: Request) -> Response:
    reads: Reads = request.app.state.reads
    stale_s = request.app.state.config.heartbeat_stale_s
    queues = await reads.queues()
    # Heartbeats up to an hour old are read so a worker that stopped shows up flagged.
    stats = await reads.stats(queues, 3600.0)
    rows = [
        WorkerRow(q, hb, st.server_time - hb.seen_at, st.server_time - hb.seen_at > stale_s)
        for q, st in stats.items()
        for hb in st.workers
    ]
    rows.sort(key=lambda r: (not r.stale, r.queue, r.hb.worker_id))
    return page(request, "workers.html", rows=rows, stale_s=stale_s, nav="workers")


async def scaling(request: Request) -> Response:
    cluster = request.app.state.cluster
    items = await cluster.list()
    return page(request, "scaling.html", items=items, problem=cluster.problem, nav="scaling")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def no_icon(request: Request) -> Response:
    """Browsers ask for it on every page; an empty answer keeps their consoles clean."""
    return Response(status_code=204)
