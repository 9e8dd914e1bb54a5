"""Where a JobQueue's Redis lives and how to reach it: the ``spec.redis`` models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from jobqueue_operator.model_base import SecretKeyRef, _Model

REDIS_URL_PATTERN = r"^rediss?://"
#: Printable ASCII without spaces: AUTH would split a name with a space or newline.
REDIS_USERNAME_PATTERN = r"^[!-~]+$"


class RedisTLS(_Model):
    """TLS towards Redis."""

    enabled: bool = False
    insecure_skip_verify: bool = False


class RedisConnection(_Model):
    """Where the queues live. Either ``url`` or ``host``; never a password inline."""

    url: Annotated[str, StringConstraints(max_length=2048, pattern=REDIS_URL_PATTERN)] | None = None
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 6379
    db: Annotated[int, Field(ge=0, le=1023)] = 0
    username: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=256, pattern=REDIS_USERNAME_PATTERN)
        ]
        | None
    ) = None
    password_secret_ref: SecretKeyRef | None = None
    tls: RedisTLS = Field(default_factory=RedisTLS)
    timeout_seconds: Annotated[float, Field(ge=0.1, le=30)] = 2.0

    @model_validator(mode="after")
    def _one_address(self) -> RedisConnection:
        if (self.url is None) == (self.host is None):
            raise ValueError("set exactly one of redis.url and redis.host")
        if self.url is not None and "@" in self.url:
            raise ValueError("redis.url must not carry credentials; use passwordSecretRef")
        if self.tls.insecure_skip_verify and not self.tls.enabled:
            raise ValueError("redis.tls.insecureSkipVerify needs redis.tls.enabled")
        return self
