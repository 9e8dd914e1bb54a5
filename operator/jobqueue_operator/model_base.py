"""What every spec model shares: camelCase on the wire, Kubernetes names, Secret references.

Its own module so that the Redis connection models (``redis_spec``) and the rest
of the JobQueue spec (``models``) can both build on it without importing each other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class _Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


K8sName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)]


class SecretKeyRef(_Model):
    """A key of a Secret in the JobQueue's namespace."""

    name: K8sName
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = "password"
