"""Jobs: search by id, state, type and time; one job's payload, attempt, error and result."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobqueue_protocol import keys
from jobqueue_protocol.logformat import redact_text
from jobqueue_web import history
from jobqueue_web.reads import Reads
from jobqueue_web.redact import redact
from jobqueue_web.render import page

STATES = ("queued", "delayed", "running", "dead")
_LIMIT = 100


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


async def search(request: Request) -> Response:
    reads: Reads = request.app.state.reads
    queues = await reads.queues()
    q = request.query_params
    job_id = q.get("id", "").strip()
    queue = q.get("queue", "") or (queues[0] if queues else "")
    state = q.get("state", "dead")
    job_type = q.get("type", "").strip()
    since_min = q.get("since", "").strip()
    problems: list[str] = []
    if job_id:
        rec = await reads.job(job_id, queues)
        if rec is not None:
            return RedirectResponse(f"/jobs/{rec.queue}/{rec.id}", status_code=303)
        problems.append(f"no job with id {job_id[:100]!r} in {len(queues)} queue(s)")
    if state not in STATES:
        problems.append(f"state must be one of {', '.join(STATES)}")
        state = "dead"
    since_s: float | None = None
    if since_min:
        try:
            since_s = float(since_min) * 60
            if since_s <= 0:
                raise ValueError
        except ValueError:
            problems.append("since must be a positive number of minutes")
            since_s = None
    rows = []
    if queue in queues:
        found = await reads.jobs_in_state(queue, state, _LIMIT)  # type: ignore[arg-type]
        now = time.time()
        rows = [
            r
            for r in found
            if (not job_type or r.type == job_type)
            and (since_s is None or (r.enqueued_at or 0) >= now - since_s)
        ]
    elif queue:
        problems.append(f"unknown queue {queue[:100]!r}")
    past: list[history.HistoryRow] = []
    hstatus = q.get("hstatus", "completed")
    dsn: str | None = request.app.state.config.postgres_dsn
    if dsn:
        if hstatus not in history.STATUSES:
            problems.append(f"history status must be one of {', '.join(history.STATUSES)}")
            hstatus = "completed"
        past, problem = await history.recent(dsn, queue or None, hstatus, _LIMIT)
        past = [r for r in past if not job_type or r.type == job_type]
        if problem:
            problems.append(problem)
    return page(
        request,
        "jobs.html",
        nav="jobs",
        queues=queues,
        rows=rows,
        states=STATES,
        problems=problems,
        form={
            "id": job_id,
            "queue": queue,
            "state": state,
            "type": job_type,
            "since": since_min,
            "hstatus": hstatus,
        },
        limit=_LIMIT,
        history_on=bool(dsn),
        past=past,
        hstatuses=history.STATUSES,
    )


async def job_page(request: Request) -> Response:
    reads: Reads = request.app.state.reads
    queue = request.path_params["queue"]
    job_id = request.path_params["job_id"]
    try:
        keys.job_key(queue, job_id)
    except ValueError as exc:
        return page(request, "missing.html", 400, message=str(exc), nav="jobs")
    rec = await reads.job(job_id, [queue])
    dsn: str | None = request.app.state.config.postgres_dsn
    attempts: list[history.Attempt] = []
    problem = None
    if dsn:
        attempts, problem = await history.attempts(dsn, job_id)
    if rec is None:
        if attempts:  # expired in Redis, still in the history
            return page(
                request, "job_history.html", nav="jobs", queue=queue, job_id=job_id,
                attempts=attempts,
            )  # fmt: skip
        return page(
            request, "missing.html", 404, message=f"no job {job_id} in queue {queue}", nav="jobs"
        )
    fields: frozenset[str] = request.app.state.config.redact_fields
    payload: Any = None
    if rec.envelope_json:
        try:
            payload = redact(json.loads(rec.envelope_json).get("payload"), fields)
        except (ValueError, AttributeError):
            payload = "(the stored envelope is not valid JSON)"
    try:
        result = None if rec.result_json is None else _pretty(redact(rec.result, fields))
    except ValueError:
        result = redact_text(rec.result_json or "")
    return page(
        request,
        "job.html",
        nav="jobs",
        rec=rec,
        payload=_pretty(payload),
        result=result,
        error=redact_text(rec.error) if rec.error else None,
        traceback=redact_text(rec.traceback) if rec.traceback else None,
        attempts=attempts,
        history_on=bool(dsn),
        history_problem=problem,
    )
