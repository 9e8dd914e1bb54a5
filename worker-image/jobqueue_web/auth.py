"""Who is asking and what they may do: tokens, signed sessions, CSRF tokens.

Pure functions over bytes and the clock (passed in), so every rule is tested by
tables. Tokens are compared in constant time; sessions and CSRF tokens are HMACs
under a per-server secret, so the server stores nothing per visitor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # may replay and purge
    READONLY = "readonly"  # sees everything, changes nothing
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class AuthConfig:
    admin_tokens: tuple[str, ...] = ()
    readonly_tokens: tuple[str, ...] = ()
    # A header set by a trusted authenticating proxy (e.g. X-Forwarded-User);
    # only honoured when configured, since any client can send it otherwise.
    proxy_user_header: str | None = None
    proxy_admin_users: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.admin_tokens or self.readonly_tokens or self.proxy_user_header)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, auth: AuthConfig) -> str | None:
    """Why the server must not start on ``host`` with ``auth``, else None."""
    if is_loopback(host) or auth.enabled:
        return None
    return (
        f"--host {host} listens beyond this machine and no authentication is configured;"
        " give --admin-token-file (and --readonly-token-file) or --proxy-user-header"
    )


def role_for_token(token: str, auth: AuthConfig) -> Role:
    given = token.encode()
    for t in auth.admin_tokens:
        if hmac.compare_digest(given, t.encode()):
            return Role.ADMIN
    for t in auth.readonly_tokens:
        if hmac.compare_digest(given, t.encode()):
            return Role.READONLY
    return Role.ANONYMOUS


def role_for_proxy_user(user: str, auth: AuthConfig) -> Role:
    if not user:
        return Role.ANONYMOUS
    return Role.ADMIN if user in auth.proxy_admin_users else Role.READONLY


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_session(secret: bytes, role: Role, now: float, ttl_s: float) -> str:
    body = f"{role.value}.{int(now + ttl_s)}"
    return f"{body}.{_mac(secret, body)}"


def read_session(secret: bytes, value: str, now: float) -> Role:
    """The role a session cookie grants; anonymous when forged, expired or malformed."""
    parts = value.split(".")
    if len(parts) != 3:
        return Role.ANONYMOUS
    role, expires, mac = parts
    if not hmac.compare_digest(mac.encode(), _mac(secret, f"{role}.{expires}").encode()):
        return Role.ANONYMOUS
    try:
        if int(expires) < now:
            return Role.ANONYMOUS
        return Role(role)
    except ValueError:
        return Role.ANONYMOUS


def csrf_token(secret: bytes, visitor_id: str) -> str:
    """Bound to the visitor's own cookie, so a token lifted from one browser fails in another."""
    return _mac(secret, f"csrf:{visitor_id}")


def csrf_ok(secret: bytes, visitor_id: str, token: str) -> bool:
    if not visitor_id or not token:
        return False
    return hmac.compare_digest(token.encode(), csrf_token(secret, visitor_id).encode())


def may_change(role: Role, auth: AuthConfig) -> bool:
    """Replay and purge: admins, or anyone when no auth is configured (loopback only)."""
    return role is Role.ADMIN or (not auth.enabled and role is Role.ANONYMOUS)


def may_read(role: Role, auth: AuthConfig) -> bool:
    return role is not Role.ANONYMOUS or not auth.enabled
