"""What identifies one Redis connection pool: a JobQueue's ``spec.redis`` plus its password.

JobQueues whose endpoints are equal share one pool (``observe.RedisPools``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobqueue_operator.redis_spec import RedisConnection


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What identifies one pool. The password is part of it but never printed."""

    url: str | None
    host: str | None
    port: int
    db: int
    username: str | None
    password: str | None = field(repr=False)
    tls: bool
    verify: bool
    timeout_s: float

    def display(self) -> str:
        """A description for conditions and logs, never with credentials."""
        if self.url is not None:
            return self.url
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"


def endpoint_for(conn: RedisConnection, password: str | None) -> Endpoint:
    """The endpoint of a JobQueue's ``spec.redis`` plus the password from its Secret."""
    tls = conn.tls.enabled or (conn.url or "").startswith("rediss://")
    return Endpoint(
        url=conn.url,
        host=conn.host,
        port=conn.port,
        db=conn.db,
        username=conn.username,
        password=password,
        tls=tls,
        verify=not conn.tls.insecure_skip_verify,
        timeout_s=conn.timeout_seconds,
    )
