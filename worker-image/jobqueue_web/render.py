"""Templates and the request-scoped facts every page needs (role, CSRF token)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from jobqueue_web.auth import csrf_token, may_change
from jobqueue_web.security import Caller


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def _bytes(n: int | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def environment() -> Environment:
    folder = resources.files("jobqueue_web") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["bytes"] = _bytes
    return env


_ENV = environment()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    app_state = request.app.state
    caller: Caller = request.state.caller
    csrf = csrf_token(app_state.secret, caller.visitor) if caller.visitor else ""
    html = _ENV.get_template(template).render(
        request=request,
        role=caller.role.value,
        auth_enabled=app_state.config.auth.enabled,
        can_change=may_change(caller.role, app_state.config.auth),
        csrf=csrf,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
