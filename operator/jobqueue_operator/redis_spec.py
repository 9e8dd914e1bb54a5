"""``spec.redis`` of a JobQueue: where its queues live and how to reach them.

Its own module because the connection options grow on their own (TLS, Sentinel)
while the scaling fields of the spec stay put.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from jobqueue_operator.camel_model import CamelModel as _Model
from jobqueue_operator.camel_model import K8sName

#: redis://, rediss:// and their Sentinel and Cluster forms (the hosts are then the
#: sentinels, or seed nodes of the cluster).
REDIS_URL_PATTERN = r"^rediss?(\+sentinel|\+cluster)?://"
#: Printable ASCII without spaces: AUTH would split a name with a space or newline.
REDIS_USERNAME_PATTERN = r"^[!-~]+$"
RedisUsername = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=REDIS_USERNAME_PATTERN)
]
#: host:port of a sentinel; an IPv6 address in brackets.
SENTINEL_ADDRESS_PATTERN = r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$"


class SecretKeyRef(_Model):
    """A key of a Secret in the JobQueue's namespace."""

    name: K8sName
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = "password"


class SecretName(_Model):
    """A whole Secret in the JobQueue's namespace (its keys are fixed by its type)."""

    name: K8sName


class CaBundleRef(_Model):
    """The Secret key holding a CA bundle; ``ca.crt`` as cert-manager writes it."""

    name: K8sName
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = "ca.crt"


class RedisTLS(_Model):
    """TLS towards Redis: the CA to trust, a client certificate, the name to expect."""

    enabled: bool = False
    insecure_skip_verify: bool = False
    #: A CA bundle (PEM) to verify the server with, instead of the system's CAs.
    ca_secret_ref: CaBundleRef | None = None
    #: A kubernetes.io/tls Secret: ``tls.crt`` and ``tls.key`` for mutual TLS.
    client_cert_secret_ref: SecretName | None = None
    #: The name the server certificate must carry, when it differs from the address.
    server_name: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None


class RedisSentinel(_Model):
    """Redis behind Sentinel: where the sentinels are, and the name of the master they watch."""

    addresses: Annotated[
        list[Annotated[str, StringConstraints(max_length=260, pattern=SENTINEL_ADDRESS_PATTERN)]],
        Field(min_length=1, max_length=10),
    ]
    master_name: Annotated[
        str, StringConstraints(min_length=1, max_length=253, pattern=r"^[!-~]+$")
    ]
    username: RedisUsername | None = None
    #: The sentinels' own password (``requirepass`` in sentinel.conf), not the data password.
    password_secret_ref: SecretKeyRef | None = None


class RedisConnection(_Model):
    """Where the queues live: ``url``, ``host`` or ``sentinel``; never a password inline."""

    url: Annotated[str, StringConstraints(max_length=2048, pattern=REDIS_URL_PATTERN)] | None = None
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    sentinel: RedisSentinel | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 6379
    db: Annotated[int, Field(ge=0, le=1023)] = 0
    username: RedisUsername | None = None
    password_secret_ref: SecretKeyRef | None = None
    tls: RedisTLS = Field(default_factory=RedisTLS)
    timeout_seconds: Annotated[float, Field(ge=0.1, le=30)] = 2.0

    @model_validator(mode="after")
    def _one_address(self) -> RedisConnection:
        if sum(x is not None for x in (self.url, self.host, self.sentinel)) != 1:
            raise ValueError("set exactly one of redis.url, redis.host and redis.sentinel")
        if self.url is not None and "@" in self.url:
            raise ValueError("redis.url must not carry credentials; use passwordSecretRef")
        if self.url is not None and "?" in self.url:
            raise ValueError("redis.url must not carry parameters; use the redis.tls fields")
        if self.tls.insecure_skip_verify and not self.tls.enabled:
            raise ValueError("redis.tls.insecureSkipVerify needs redis.tls.enabled")
        tls_fields = (
            self.tls.ca_secret_ref is not None
            or self.tls.client_cert_secret_ref is not None
            or self.tls.server_name is not None
        )
        if tls_fields and not self.tls_on:
            raise ValueError(
                "redis.tls.caSecretRef, clientCertSecretRef and serverName need TLS:"
                " redis.tls.enabled or a rediss:// url"
            )
        return self

    @property
    def tls_on(self) -> bool:
        return self.tls.enabled or (self.url or "").startswith("rediss")


def secret_refs(conn: RedisConnection) -> dict[str, tuple[str, str]]:
    """Every Secret key the connection needs, by role: (Secret name, key)."""
    refs: dict[str, tuple[str, str]] = {}
    if conn.password_secret_ref is not None:
        refs["password"] = (conn.password_secret_ref.name, conn.password_secret_ref.key)
    if conn.sentinel is not None and conn.sentinel.password_secret_ref is not None:
        ref = conn.sentinel.password_secret_ref
        refs["sentinel_password"] = (ref.name, ref.key)
    if conn.tls.ca_secret_ref is not None:
        refs["ca"] = (conn.tls.ca_secret_ref.name, conn.tls.ca_secret_ref.key)
    if conn.tls.client_cert_secret_ref is not None:
        refs["cert"] = (conn.tls.client_cert_secret_ref.name, "tls.crt")
        refs["key"] = (conn.tls.client_cert_secret_ref.name, "tls.key")
    return refs
