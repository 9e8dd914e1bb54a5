"""Operator-wide settings, read once from the environment at startup.

The scaling defaults keep the seeds' environment names (``SCALE_UP_QUEUE_DEPTH``,
``MIN_WORKERS``, ...) without a prefix, so an existing deployment's values carry
over; a JobQueue's own fields override them (see ``models.resolve``). Settings of
the operator process itself use the ``JQO_`` prefix. A bad value fails the process
at boot with one message naming the variable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue_operator.models import OperatorDefaults


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"JQO_{name}")


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator process."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Scaling defaults for JobQueues that leave a field unset (seeds' names).
    scale_up_queue_depth: Annotated[
        int, Field(ge=1, validation_alias=_env("SCALE_UP_QUEUE_DEPTH"))
    ] = 100
    """Waiting jobs at which a queue scales up (seeds: 100)."""
    scale_up_queue_latency_s: Annotated[
        float, Field(gt=0, validation_alias=_env("SCALE_UP_QUEUE_LATENCY"))
    ] = 30.0
    """Age in seconds of the oldest waiting job at which a queue scales up (seeds: 30)."""
    scale_down_queue_depth: Annotated[
        int, Field(ge=1, validation_alias=_env("SCALE_DOWN_QUEUE_DEPTH"))
    ] = 10
    """A queue may scale down only below this many waiting jobs (seeds: 10)."""
    scale_down_queue_latency_s: Annotated[
        float, Field(gt=0, validation_alias=_env("SCALE_DOWN_QUEUE_LATENCY"))
    ] = 5.0
    """... and only while the oldest waiting job is younger than this (seeds: 5 s)."""
    min_workers: Annotated[int, Field(ge=0, validation_alias=_env("MIN_WORKERS"))] = 1
    """Minimum replicas of a JobQueue that sets neither minReplicas nor a priorityClass."""
    max_workers: Annotated[int, Field(ge=1, validation_alias=_env("MAX_WORKERS"))] = 10
    """Maximum replicas of a JobQueue that sets neither maxReplicas nor a priorityClass."""
    scale_up_cooldown_s: Annotated[int, Field(ge=0, validation_alias=_env("SCALE_UP_COOLDOWN"))] = (
        60
    )
    """Seconds between two scale-ups; at least a worker's start time (seeds: 60)."""
    scale_down_cooldown_s: Annotated[
        int, Field(ge=0, validation_alias=_env("SCALE_DOWN_COOLDOWN"))
    ] = 300
    """Seconds after any scale before a scale-down (seeds: 300, like the HPA's window)."""
    scale_up_cpu_threshold: Annotated[
        int | None, Field(ge=1, le=1000, validation_alias=_env("SCALE_UP_CPU_THRESHOLD"))
    ] = None
    """Average worker CPU, in % of the container's request, that adds workers (off if unset)."""
    scale_up_memory_threshold: Annotated[
        int | None, Field(ge=1, le=1000, validation_alias=_env("SCALE_UP_MEMORY_THRESHOLD"))
    ] = None
    """Average worker RSS, in % of the container's memory request, that adds workers."""
    scale_down_cpu_threshold: Annotated[
        int | None, Field(ge=1, le=1000, validation_alias=_env("SCALE_DOWN_CPU_THRESHOLD"))
    ] = None
    """A scale-down needs the average worker CPU below this % (no limit if unset)."""
    scale_down_memory_threshold: Annotated[
        int | None, Field(ge=1, le=1000, validation_alias=_env("SCALE_DOWN_MEMORY_THRESHOLD"))
    ] = None
    """A scale-down needs the average worker RSS below this % (no limit if unset)."""

    # The process.
    metrics_port: Annotated[int, Field(ge=0, le=65535, validation_alias="JQO_METRICS_PORT")] = 8080
    """Port of the Prometheus ``/metrics`` endpoint (0: do not serve)."""
    probe_port: Annotated[int, Field(ge=0, le=65535, validation_alias="JQO_PROBE_PORT")] = 8081
    """Port of kopf's liveness endpoint ``/healthz`` (0: do not serve)."""
    redis_max_connections: Annotated[
        int, Field(ge=1, le=1000, validation_alias="JQO_REDIS_MAX_CONNECTIONS")
    ] = 8
    """Connections per Redis endpoint pool; one poll uses one connection for one round trip."""
    namespace: Annotated[str | None, Field(validation_alias="JQO_NAMESPACE")] = None
    """Watch only this namespace; unset watches all namespaces (needs a ClusterRole)."""

    def scaling_defaults(self) -> OperatorDefaults:
        """The part a JobQueue's unset fields fall back to."""
        return OperatorDefaults(
            scale_up_queue_depth=self.scale_up_queue_depth,
            scale_up_queue_latency_s=self.scale_up_queue_latency_s,
            scale_down_queue_depth=self.scale_down_queue_depth,
            scale_down_queue_latency_s=self.scale_down_queue_latency_s,
            min_workers=self.min_workers,
            max_workers=self.max_workers,
            scale_up_cooldown_s=self.scale_up_cooldown_s,
            scale_down_cooldown_s=self.scale_down_cooldown_s,
            scale_up_cpu_percent=self.scale_up_cpu_threshold,
            scale_up_memory_percent=self.scale_up_memory_threshold,
            scale_down_cpu_percent=self.scale_down_cpu_threshold,
            scale_down_memory_percent=self.scale_down_memory_threshold,
        )
