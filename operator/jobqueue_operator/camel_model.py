"""The base of every model of the JobQueue resource: its spec and its status.

The API server speaks camelCase and the code snake_case; a field the CRD does
not declare is refused here rather than pruned silently by the API server.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

K8sName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)]


class CamelModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
