"""What identifies one Redis connection pool: a JobQueue's ``spec.redis`` plus its Secrets.

JobQueues whose endpoints are equal share one pool (``observe.RedisPools``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from jobqueue_operator.redis_spec import RedisConnection
from jobqueue_protocol.redis_url import RedisTarget, TlsOptions, parse_redis_url


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What identifies one pool: the target with its credentials (never printed)."""

    target: RedisTarget
    timeout_s: float

    @property
    def tls(self) -> bool:
        return self.target.tls is not None

    def display(self) -> str:
        """A description for conditions and logs, never with credentials."""
        return self.target.display()


def endpoint_for(
    conn: RedisConnection, password: str | None, secrets: Mapping[str, str] | None = None
) -> Endpoint:
    """The endpoint of a JobQueue's ``spec.redis`` plus the values of its Secrets.

    ``secrets`` holds the other Secret values by the roles of
    :func:`~jobqueue_operator.redis_spec.secret_refs` (sentinel_password, ca, cert, key).
    """
    found = dict(secrets or {})
    tls = None
    if conn.tls_on:
        tls = TlsOptions(
            ca_pem=found.get("ca"),
            cert_pem=found.get("cert"),
            key_pem=found.get("key"),
            server_name=conn.tls.server_name,
            verify=not conn.tls.insecure_skip_verify,
        )
    if conn.url is not None:
        parsed = parse_redis_url(conn.url)
        target = replace(parsed, tls=tls, username=conn.username, password=password)
        if parsed.mode == "sentinel":
            target = replace(target, sentinel_password=found.get("sentinel_password"))
    elif conn.sentinel is not None:
        target = RedisTarget(
            mode="sentinel",
            hosts=tuple(_address(a) for a in conn.sentinel.addresses),
            db=conn.db,
            username=conn.username,
            password=password,
            master_name=conn.sentinel.master_name,
            sentinel_username=conn.sentinel.username,
            sentinel_password=found.get("sentinel_password"),
            tls=tls,
        )
    else:
        target = RedisTarget(
            mode="direct",
            hosts=((conn.host or "localhost", conn.port),),
            db=conn.db,
            username=conn.username,
            password=password,
            tls=tls,
        )
    return Endpoint(target=target, timeout_s=conn.timeout_seconds)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
