"""What one ``jobqueue web`` server was started with."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobqueue_web.auth import AuthConfig
from jobqueue_web.redact import DEFAULT_FIELDS


@dataclass(frozen=True)
class WebConfig:
    redis_url: str
    queues: tuple[str, ...] = ()  # empty: every queue Redis knows
    auth: AuthConfig = field(default_factory=AuthConfig)
    redact_fields: frozenset[str] = frozenset(DEFAULT_FIELDS)
    sample_interval_s: float = 5.0
    heartbeat_stale_s: float = 30.0
    kube_enabled: bool = True
    kube_namespace: str | None = None
    session_ttl_s: float = 12 * 3600.0
    # Set the Secure flag on cookies (behind TLS); off for plain http on loopback.
    secure_cookies: bool = False
    # PostgreSQL job history (every attempt, finished jobs); None: Redis only.
    postgres_dsn: str | None = field(default=None, repr=False)  # may hold a password
