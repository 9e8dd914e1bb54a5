"""The checks every state-changing request passes: signed in, CSRF token, allowed role."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from jobqueue_web.auth import Role, csrf_ok, may_change
from jobqueue_web.security import Caller


async def checked_form(request: Request, *, need_change: bool) -> FormData | Response:
    """The form when the request may proceed, else the refusal to send back.

    Order matters for what the caller learns: an anonymous caller hears only
    that it must sign in, a forged form that its token is wrong.
    """
    caller: Caller = request.state.caller
    config = request.app.state.config
    if config.auth.enabled and caller.role is Role.ANONYMOUS and need_change:
        return PlainTextResponse("sign in first\n", status_code=401)
    form = await request.form()
    if not caller.by_bearer:
        token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        if not csrf_ok(request.app.state.secret, caller.visitor, token):
            return PlainTextResponse("the form's CSRF token is missing or wrong\n", 403)
    if need_change and not may_change(caller.role, config.auth):
        return PlainTextResponse(f"the {caller.role.value} role cannot change jobs\n", 403)
    return form
