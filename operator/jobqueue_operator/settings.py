"""Operator-wide settings, read once from the environment at startup.

The scaling defaults keep the environment names the first version of this
operator read (``SCALE_UP_QUEUE_DEPTH``, ``MIN_WORKERS``, ...) without a prefix,
so an existing deployment's values carry over; a JobQueue's own fields override
them (see ``effective.resolve``). Settings of
the operator process itself use the ``JQO_`` prefix. A bad value fails the process
at boot with one message naming the variable.

The same defaults can come from a ConfigMap (``JQO_DEFAULTS_CONFIGMAP``,
``namespace/name``; ``manifests/admission/defaults-configmap.yaml``). Its keys are
the environment names above and its values win over the environment, because
the ValidatingAdmissionPolicy judges new JobQueues by that ConfigMap: the
operator must apply the numbers admission checked against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue_operator.effective import OperatorDefaults


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"JQO_{name}")


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator process."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Scaling defaults for JobQueues that leave a field unset (unprefixed names).
    scale_up_queue_depth: Annotated[
        int, Field(ge=1, validation_alias=_env("SCALE_UP_QUEUE_DEPTH"))
    ] = 100
    """Waiting jobs at which a queue scales up."""
    scale_up_queue_latency_s: Annotated[
        float, Field(gt=0, validation_alias=_env("SCALE_UP_QUEUE_LATENCY"))
    ] = 30.0
    """Age in seconds of the oldest waiting job at which a queue scales up."""
    scale_down_queue_depth: Annotated[
        int, Field(ge=1, validation_alias=_env("SCALE_DOWN_QUEUE_DEPTH"))
    ] = 10
    """A queue may scale down only below this many waiting jobs."""
    scale_down_queue_latency_s: Annotated[
        float, Field(gt=0, validation_alias=_env("SCALE_DOWN_QUEUE_LATENCY"))
    ] = 5.0
    """... and only while the oldest waiting job is younger than this many seconds."""
    min_workers: Annotated[int, Field(ge=0, validation_alias=_env("MIN_WORKERS"))] = 1
    """Minimum replicas of a JobQueue that sets neither minReplicas nor a priorityClass."""
    max_workers: Annotated[int, Field(ge=1, validation_alias=_env("MAX_WORKERS"))] = 10
    """Maximum replicas of a JobQueue that sets neither maxReplicas nor a priorityClass."""
    scale_up_cooldown_s: Annotated[int, Field(ge=0, validation_alias=_env("SCALE_UP_COOLDOWN"))] = (
        60
    )
    """Seconds between two scale-ups; at least a worker's start time, so a new worker
    shows in the queue depth before the next step."""
    scale_down_cooldown_s: Annotated[
        int, Field(ge=0, validation_alias=_env("SCALE_DOWN_COOLDOWN"))
    ] = 300
    """Seconds after any scale before a scale-down; as long as the HPA's default
    stabilization window, so a short lull does not remove workers a burst needs again."""
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
    ready_port: Annotated[int, Field(ge=0, le=65535, validation_alias="JQO_READY_PORT")] = 0
    """Port of the readiness endpoint ``/readyz`` (0: do not serve; the Deployment sets 8082)."""
    lease_namespace: Annotated[str, Field(validation_alias="JQO_LEASE_NAMESPACE")] = (
        "jobqueue-system"
    )
    """Namespace of the leader-election Lease (the operator's own)."""
    redis_max_connections: Annotated[
        int, Field(ge=1, le=1000, validation_alias="JQO_REDIS_MAX_CONNECTIONS")
    ] = 8
    """Connections per Redis endpoint pool; one poll uses one connection for one round trip."""
    status_writes_in_flight: Annotated[
        int, Field(ge=1, le=100, validation_alias="JQO_STATUS_WRITES_IN_FLIGHT")
    ] = 8
    """Status PATCHes in flight at once, for all JobQueues. Polls never wait for them;
    when the API server is slower than the statuses come, the newest status of each
    JobQueue waits, a new decision before a routine refresh."""
    webhook_port: Annotated[int, Field(ge=0, le=65535, validation_alias="JQO_WEBHOOK_PORT")] = 0
    """Port of the admission webhook (0: no webhook; the Deployment sets 9443)."""
    listen_addr: Annotated[str, Field(validation_alias="JQO_LISTEN_ADDR")] = "0.0.0.0"
    """Address the admission webhook and the readiness endpoint listen on."""
    webhook_host: Annotated[str | None, Field(validation_alias="JQO_WEBHOOK_HOST")] = None
    """Host name the API server uses in the webhook's URL (default: the listen address)."""
    webhook_service: Annotated[str, Field(validation_alias="JQO_WEBHOOK_SERVICE")] = ""
    """``namespace/name`` of the Service in front of the webhook ('' : reach it by URL)."""
    webhook_cert_dir: Annotated[str, Field(validation_alias="JQO_WEBHOOK_CERT_DIR")] = ""
    """Directory with tls.crt, tls.key (and ca.crt) for the webhook ('' : self-signed)."""
    defaults_configmap: Annotated[str, Field(validation_alias="JQO_DEFAULTS_CONFIGMAP")] = (
        "jobqueue-system/jobqueue-operator-defaults"
    )
    """``namespace/name`` of the ConfigMap of scaling defaults ('' to use the environment only)."""

    def with_defaults_from(self, data: Mapping[str, str]) -> OperatorSettings:
        """These settings with the scaling defaults of a ConfigMap's ``data`` on top.

        Raises ``ValueError`` with one line naming the key for an unknown key or a
        bad value, so a typo in the ConfigMap is reported instead of ignored.
        """
        unknown = sorted(set(data) - set(SCALING_KEYS))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; the keys are {', '.join(SCALING_KEYS)}")
        merged = self.model_dump()
        for key, value in data.items():
            merged[SCALING_KEYS[key]] = value
        try:
            return OperatorSettings.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = next(k for k, f in SCALING_KEYS.items() if f == error["loc"][0])
            raise ValueError(f"{key}={data.get(key)!r}: {error['msg']}") from None

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


#: ConfigMap key (the environment name) → settings field, for the scaling defaults.
SCALING_KEYS: dict[str, str] = {
    "SCALE_UP_QUEUE_DEPTH": "scale_up_queue_depth",
    "SCALE_UP_QUEUE_LATENCY": "scale_up_queue_latency_s",
    "SCALE_DOWN_QUEUE_DEPTH": "scale_down_queue_depth",
    "SCALE_DOWN_QUEUE_LATENCY": "scale_down_queue_latency_s",
    "MIN_WORKERS": "min_workers",
    "MAX_WORKERS": "max_workers",
    "SCALE_UP_COOLDOWN": "scale_up_cooldown_s",
    "SCALE_DOWN_COOLDOWN": "scale_down_cooldown_s",
    "SCALE_UP_CPU_THRESHOLD": "scale_up_cpu_threshold",
    "SCALE_UP_MEMORY_THRESHOLD": "scale_up_memory_threshold",
    "SCALE_DOWN_CPU_THRESHOLD": "scale_down_cpu_threshold",
    "SCALE_DOWN_MEMORY_THRESHOLD": "scale_down_memory_threshold",
}
