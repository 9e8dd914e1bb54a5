"""Headers on every response, and who the request is from (cookie, bearer or proxy)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

from jobqueue_web.auth import AuthConfig, Role, read_session, role_for_proxy_user, role_for_token

SESSION_COOKIE = "jq_session"
VISITOR_COOKIE = "jq_visitor"

# No inline script or style anywhere: htmx is configured by a <meta> tag and the
# charts are drawn by static files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class Caller:
    role: Role
    visitor: str  # the CSRF binding; "" for a bearer caller (no cookies, nothing to forge)
    new_visitor: bool
    by_bearer: bool


def identify(request: Request, auth: AuthConfig, secret: bytes) -> Caller:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return Caller(role_for_token(header[7:].strip(), auth), "", False, True)
    visitor = request.cookies.get(VISITOR_COOKIE, "")
    new = len(visitor) < 16
    if new:
        visitor = secrets.token_urlsafe(24)
    role = Role.ANONYMOUS
    if auth.proxy_user_header:
        role = role_for_proxy_user(request.headers.get(auth.proxy_user_header, ""), auth)
    if role is Role.ANONYMOUS:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if cookie:
            role = read_session(secret, cookie, time.time())
    return Caller(role, visitor, new, False)
