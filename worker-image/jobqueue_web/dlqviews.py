"""The dead-letter queue: filter, cursor pages, replay or purge with confirmation and a count."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobqueue_protocol import keys
from jobqueue_web.cursor import parse_cursor
from jobqueue_web.guard import checked_form
from jobqueue_web.reads import Reads
from jobqueue_web.render import page
from jobqueue_worker.envelope import DeadReason
from jobqueue_worker.records import DeadFilter

PAGE = 50
ACTIONS = ("replay", "purge")
_REASONS = tuple(r.value for r in DeadReason)


def _filter(params: dict[str, str]) -> DeadFilter:
    return DeadFilter(
        type=(params.get("type") or "").strip() or None,
        reason=(params.get("reason") or "").strip() or None,
    )


async def dlq_index(request: Request) -> Response:
    reads: Reads = request.app.state.reads
    queues = await reads.queues()
    stats = await reads.stats(queues, request.app.state.config.heartbeat_stale_s)
    return page(request, "dlq_index.html", nav="dlq", stats=[stats[q] for q in queues])


async def dlq_page(request: Request) -> Response:
    reads: Reads = request.app.state.reads
    queue = request.path_params["queue"]
    params = dict(request.query_params)
    try:
        keys.validate_queue(queue)
        cursor = parse_cursor(params.get("cursor"))
    except ValueError as exc:
        return page(request, "missing.html", 400, message=str(exc), nav="dlq")
    flt = _filter(params)
    found = await reads.dead_page(queue, cursor, PAGE, flt)
    keep = {k: v for k, v in (("type", flt.type), ("reason", flt.reason)) if v}
    next_url = None
    if found.next_cursor is not None:
        next_url = f"/dlq/{queue}?" + urlencode({**keep, "cursor": found.next_cursor.encode()})
    return page(
        request,
        "dlq.html",
        nav="dlq",
        queue=queue,
        found=found,
        flt=flt,
        reasons=_REASONS,
        next_url=next_url,
        first_url=f"/dlq/{queue}?" + urlencode(keep),
        at_start=cursor.max_score_ms is None,
        notice=params.get("done"),
    )


async def dlq_action(request: Request) -> Response:
    """First post: the confirmation with a count; the second (``confirm=yes``) acts."""
    form = await checked_form(request, need_change=True)
    if isinstance(form, Response):
        return form
    reads: Reads = request.app.state.reads
    queue = request.path_params["queue"]
    try:
        keys.validate_queue(queue)
    except ValueError as exc:
        return page(request, "missing.html", 400, message=str(exc), nav="dlq")
    action = str(form.get("action") or "")
    if action not in ACTIONS:
        return page(request, "missing.html", 400, message="action must be replay or purge")
    scope = str(form.get("scope") or "selected")
    ids = [str(i) for i in form.getlist("id") if str(i)] if scope == "selected" else []
    if scope == "selected" and not ids:
        return page(request, "missing.html", 400, message="select at least one job first")
    flt = _filter({"type": str(form.get("type") or ""), "reason": str(form.get("reason") or "")})
    chosen, gone = await reads.dead_select(queue, ids, flt)
    if form.get("confirm") != "yes":
        return page(
            request,
            "confirm.html",
            nav="dlq",
            queue=queue,
            action=action,
            scope=scope,
            ids=ids,
            count=len(chosen),
            gone=len(gone),
            flt=flt,
        )
    done = await reads.dead_apply(queue, action, chosen)  # type: ignore[arg-type]
    verb = "replayed" if action == "replay" else "purged"
    note = f"{verb} {done}" + (f"; {len(gone)} were no longer dead" if gone else "")
    return RedirectResponse(f"/dlq/{queue}?" + urlencode({"done": note}), status_code=303)
