"""Worker configuration from the environment (prefix ``JQW_``), validated at start.

A bad value stops the process before it touches Redis, with a message naming the
setting (``settings.load`` turns pydantic's error into a ``ConfigError``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobqueue_protocol import keys
from jobqueue_worker.broker import Limits
from jobqueue_worker.errors import ConfigError


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JQW_", extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Served in this order under strict mode (the seeds' high, normal, low queues).
    queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    handlers: str = Field(
        default="jobqueue_worker.examples",
        description="module that registers job types (imported at start)",
    )
    concurrency: int = Field(default=10, ge=1, le=1000)
    mode: Literal["strict", "weighted"] = "strict"
    weights: Annotated[list[float], NoDecode] = Field(default_factory=list)
    # 0 disables aging; otherwise a job waiting this long is served before younger
    # jobs of more urgent bands, so low priorities cannot starve forever.
    aging_s: float = Field(default=0.0, ge=0)
    # 30 s like BullMQ's lock: recovery after a kill is bounded by it.
    lease_s: float = Field(default=30.0, gt=0.2, le=3600)
    max_deliveries: int = Field(default=3, ge=1, le=100)
    # Kubernetes sends SIGKILL 30 s after SIGTERM by default: keep this below it.
    grace_period_s: float = Field(default=30.0, ge=0, le=3600)
    # The pod's terminationGracePeriodSeconds, when the manifest passes it in: the
    # drain plus ~5 s of hand-back must fit, or SIGKILL lands mid-drain.
    termination_grace_period_s: float | None = Field(default=None, gt=0)
    reap_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_ttl_s: float = Field(default=30.0, gt=0)
    idle_block_s: float = Field(default=5.0, gt=0, le=60)
    result_ttl_s: float = Field(default=86_400.0, gt=0)
    job_ttl_s: float = Field(default=14 * 86_400.0, gt=0)
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    dlq_max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    dlq_max_count: int = Field(default=10_000, ge=1)
    max_payload_bytes: int = Field(default=1_000_000, ge=1)
    http_port: int = Field(default=8080, ge=0, le=65535, description="0 disables HTTP")
    http_host: str = "0.0.0.0"  # a pod must be reachable by its probes
    json_logs: bool = False
    log_level: str = "INFO"
    log_payloads: bool = False
    pod_name: str | None = Field(default=None, validation_alias="POD_NAME")

    @field_validator("queues", "weights", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return _csv(v)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one queue is needed")
        if len(set(v)) != len(v):
            raise ValueError("queues must not repeat")
        for q in v:
            keys.validate_queue(q)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WorkerSettings:
        if self.mode == "weighted" and self.weights and len(self.weights) != len(self.queues):
            raise ValueError("weights: one weight per queue is needed in weighted mode")
        if any(w < 0 for w in self.weights):
            raise ValueError("weights: must not be negative")
        tgp = self.termination_grace_period_s
        if tgp is not None and self.grace_period_s + 5 > tgp:
            raise ValueError(
                f"grace_period_s: {self.grace_period_s} s + 5 s to hand jobs back must fit in"
                f" termination_grace_period_s ({tgp} s)"
            )
        if self.lease_s < 3 * 0.1:
            raise ValueError("lease_s: too short to be renewed every lease_s/3")
        return self

    def limits(self) -> Limits:
        return Limits(
            lease_ms=int(self.lease_s * 1000),
            max_deliveries=self.max_deliveries,
            job_ttl_ms=int(self.job_ttl_s * 1000),
            result_ttl_ms=int(self.result_ttl_s * 1000),
            idem_ttl_ms=int(self.idempotency_ttl_s * 1000),
            dlq_max_age_ms=int(self.dlq_max_age_s * 1000),
            dlq_max_count=self.dlq_max_count,
        )


def load(**overrides: object) -> WorkerSettings:
    """Read the environment; on error raise ``ConfigError`` naming each bad setting."""
    try:
        return WorkerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = ".".join(str(x) for x in err["loc"]) or "settings"
            env = f"JQW_{name.upper()}" if name != "pod_name" else "POD_NAME"
            parts.append(f"{env}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(parts)) from None
