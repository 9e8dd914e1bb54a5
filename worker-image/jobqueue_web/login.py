"""Signing in with a token (from a file, the environment or a Secret) and out again."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from jobqueue_web.auth import Role, role_for_token, sign_session
from jobqueue_web.guard import checked_form
from jobqueue_web.render import page
from jobqueue_web.security import SESSION_COOKIE


async def login_form(request: Request) -> Response:
    return page(request, "login.html", error=None, nav="login")


async def login_submit(request: Request) -> Response:
    form = await checked_form(request, need_change=False)
    if isinstance(form, Response):
        return form
    config = request.app.state.config
    role = role_for_token(str(form.get("token") or "").strip(), config.auth)
    if role is Role.ANONYMOUS:
        return page(request, "login.html", 401, error="That token is not valid.", nav="login")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(request.app.state.secret, role, time.time(), config.session_ttl_s),
        max_age=int(config.session_ttl_s),
        httponly=True,
        samesite="strict",
        secure=config.secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    form = await checked_form(request, need_change=False)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
