"""Worker configuration from the environment (prefix ``JQW_``), validated at start.

A bad value stops the process before it touches Redis, with a message naming the
setting (``settings.load`` turns pydantic's error into a ``ConfigError``).

Runtime limits also take plain names without a prefix (the names an operator of
the worker types most often, documented in docs/worker.md): the per-job-type ones
(``RATE_LIMIT_<TYPE>`` and the others named in ``per_type``), and
``WORKER_MEMORY_SOFT_LIMIT``, ``WORKER_MEMORY_HARD_LIMIT``,
``WORKER_RECYCLE_AFTER_JOBS``, ``WORKER_RECYCLE_AFTER_HOURS``. ``JQW_CONFIG_FILE``
names a file of the same ``NAME=value`` lines (dotenv syntax); the environment
wins over it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobqueue_protocol import keys
from jobqueue_protocol.redis_url import parse_redis_url
from jobqueue_worker.errors import ConfigError
from jobqueue_worker.memlimit import EXPECTED_BYTES, parse_bytes
from jobqueue_worker.per_type import FIELD_PREFIX, check_keys, collect, named, type_key
from jobqueue_worker.ratelimit import RateLimit, parse_limits
from jobqueue_worker.wire import BrokerSettings, FetchPlan


def _size(v: object) -> object:
    if v is None or v == "":
        return None
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return parse_bytes(v)
    raise ValueError(f"expected {EXPECTED_BYTES}")


_NAMED_MSG = re.compile(r"^[A-Z][A-Z0-9_]+: ")

PositiveSeconds = Annotated[float, Field(gt=0, le=7 * 86_400)]


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JQW_", extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Served in this order under strict mode (e.g. high,normal,low).
    queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    # No default: a worker loads only the job code it is pointed at (the shipped
    # examples include handlers that crash or leak memory on purpose).
    handlers: str | None = Field(
        default=None,
        description="module that registers job types (imported at start); required to run",
    )
    concurrency: int = Field(default=10, ge=1, le=1000)
    # Jobs leased beyond the running ones while jobs are short (the dispatcher
    # decides when): None = as many as ``concurrency``, 0 = never.
    fetch_ahead: int | None = Field(default=None, ge=0, le=1000)
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
    # JQW_LOG_FORMAT wins over the older JQW_JSON_LOGS when both are set.
    log_format: Literal["json", "text"] | None = None
    log_level: str = "INFO"
    log_payloads: bool = False
    # auto: uvloop when installed (the image's default), else asyncio's loop.
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    pod_name: str | None = Field(default=None, validation_alias="POD_NAME")
    # Durable acks: every step waits for this many replicas (Redis WAIT), and no new
    # job is fetched until they confirm, so a failover re-runs only jobs in flight.
    durable_replicas: int = Field(default=0, ge=0, le=100)
    durable_timeout_s: float = Field(default=1.0, gt=0, le=60)
    config_file: str | None = None

    # -- durable records in PostgreSQL: off unless a DSN is given -----------------
    postgres_dsn: str | None = Field(default=None, repr=False)  # holds a password
    postgres_flush_interval_s: float = Field(default=0.1, gt=0, le=60)
    postgres_flush_events: int = Field(default=500, ge=1, le=100_000)
    postgres_buffer_max: int = Field(default=100_000, ge=100, le=10_000_000)

    # -- runtime limits; per-type dicts are keyed by ``per_type.type_key`` -------
    rate_limits: dict[str, tuple[RateLimit, ...]] = Field(default_factory=dict)
    type_concurrency: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=dict)
    timeouts: dict[str, PositiveSeconds] = Field(default_factory=dict)
    soft_timeouts: dict[str, PositiveSeconds] = Field(default_factory=dict)
    type_memory: dict[str, int] = Field(default_factory=dict)
    default_timeout_s: float | None = Field(default=None, gt=0, le=7 * 86_400)
    soft_timeout_ratio: float = Field(default=0.8, gt=0, lt=1)
    timeout_backoff_multiplier: float = Field(default=4.0, ge=1, le=1000)
    # Hard timeout of a sync handler: the thread cannot be stopped, so
    # ``isolated=True`` types run in a child process that is killed instead.
    adaptive_timeouts: bool = False
    adaptive_factor: float = Field(default=3.0, ge=1, le=100)
    adaptive_min_s: float = Field(default=1.0, gt=0)
    adaptive_max_s: float = Field(default=3600.0, gt=0)
    adaptive_min_samples: int = Field(default=20, ge=1, le=100_000)
    memory_soft_limit: int | None = Field(
        default=None,
        validation_alias=AliasChoices("WORKER_MEMORY_SOFT_LIMIT", "memory_soft_limit"),
    )
    memory_hard_limit: int | None = Field(
        default=None,
        validation_alias=AliasChoices("WORKER_MEMORY_HARD_LIMIT", "memory_hard_limit"),
    )
    memory_check_interval_s: float = Field(default=1.0, gt=0, le=60)
    use_cgroup_limit: bool = True
    recycle_after_jobs: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("WORKER_RECYCLE_AFTER_JOBS", "recycle_after_jobs"),
    )
    recycle_after_hours: float | None = Field(
        default=None,
        gt=0,
        le=24 * 365,
        validation_alias=AliasChoices("WORKER_RECYCLE_AFTER_HOURS", "recycle_after_hours"),
    )

    @field_validator("memory_soft_limit", "memory_hard_limit", mode="before")
    @classmethod
    def _bytes(cls, v: object) -> object:
        return _size(v)

    @field_validator("type_memory", mode="before")
    @classmethod
    def _type_bytes(cls, v: object) -> object:
        if isinstance(v, Mapping):
            return {k: named("JOB_MEMORY_", k, _size, x) for k, x in v.items()}
        return v

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _limits(cls, v: object) -> object:
        if isinstance(v, Mapping):
            return {
                k: named("RATE_LIMIT_", k, parse_limits, x) if isinstance(x, str) else x
                for k, x in v.items()
            }
        return v

    @field_validator("rate_limits", "type_concurrency", "timeouts", "soft_timeouts", "type_memory")
    @classmethod
    def _type_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_keys(v)

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

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        # parse_redis_url's messages never echo the value: it may carry a password.
        parse_redis_url(v)
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
        if self.durable_replicas and self.on_cluster:
            raise ValueError("durable_replicas: durable acks are not supported on a Redis Cluster")
        soft, hard = self.memory_soft_limit, self.memory_hard_limit
        if soft is not None and hard is not None and soft >= hard:
            raise ValueError(
                f"WORKER_MEMORY_SOFT_LIMIT: {soft} bytes must be below"
                f" WORKER_MEMORY_HARD_LIMIT ({hard} bytes)"
            )
        if self.adaptive_min_s > self.adaptive_max_s:
            raise ValueError("adaptive_min_s: must not exceed JQW_ADAPTIVE_MAX_S")
        for k, n in self.type_concurrency.items():
            if n > self.concurrency:
                raise ValueError(
                    f"WORKER_CONCURRENCY_{k}: {n} is above the worker's total"
                    f" JQW_CONCURRENCY ({self.concurrency})"
                )
        for k, st in self.soft_timeouts.items():
            hard_s = self.timeouts.get(k, self.default_timeout_s)
            if hard_s is not None and st >= hard_s:
                raise ValueError(
                    f"SOFT_TIMEOUT_{k}: {st} s must be below the hard timeout ({hard_s} s)"
                )
        return self

    # -- per-type lookups --------------------------------------------------------
    def limits_for(self, job_type: str) -> tuple[RateLimit, ...]:
        return self.rate_limits.get(type_key(job_type), ())

    def concurrency_for(self, job_type: str) -> int | None:
        return self.type_concurrency.get(type_key(job_type))

    def timeout_for(self, job_type: str) -> float | None:
        return self.timeouts.get(type_key(job_type), self.default_timeout_s)

    def soft_timeout_for(self, job_type: str) -> float | None:
        return self.soft_timeouts.get(type_key(job_type))

    def memory_for(self, job_type: str) -> int:
        return self.type_memory.get(type_key(job_type), 0)

    def unknown_type_keys(self, type_names: list[str]) -> list[str]:
        """Per-type variables that name no registered job type (typos)."""
        known = {type_key(t) for t in type_names}
        out = []
        for field_name, env in FIELD_PREFIX.items():
            mapping: dict[str, Any] = getattr(self, field_name)
            out += [f"{env}{k}" for k in mapping if k not in known]
        return sorted(out)

    def fetch_plan(self, type_names: list[str]) -> tuple[FetchPlan, dict[str, int]]:
        """How this worker fetches, and its per-type caps (WORKER_CONCURRENCY_<TYPE>).

        Raises ``ConfigError`` for a per-type variable naming no registered type.
        """
        unknown = self.unknown_type_keys(type_names)
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: no registered job type has this name"
                f" (known: {', '.join(type_names) or 'none'}; <TYPE> is the name"
                " upper-cased, other characters as _)"
            )
        rate_limits = tuple((n, self.limits_for(n)) for n in type_names if self.limits_for(n))
        caps = {n: cap for n in type_names if (cap := self.concurrency_for(n)) is not None}
        plan = FetchPlan(
            queues=tuple(self.queues),
            mode=self.mode,
            weights=tuple(self.weights),
            aging_ms=int(self.aging_s * 1000),
            rate_limits=rate_limits,
            limiter_queue=self.queues[0] if self.on_cluster else None,
        )
        return plan, caps

    @property
    def on_cluster(self) -> bool:
        """Redis Cluster: one script call per queue, limiter keys in the queue's slot."""
        return parse_redis_url(self.redis_url).mode == "cluster"

    def limits(self) -> BrokerSettings:
        return BrokerSettings(
            lease_ms=int(self.lease_s * 1000),
            max_deliveries=self.max_deliveries,
            job_ttl_ms=int(self.job_ttl_s * 1000),
            result_ttl_ms=int(self.result_ttl_s * 1000),
            idem_ttl_ms=int(self.idempotency_ttl_s * 1000),
            dlq_max_age_ms=int(self.dlq_max_age_s * 1000),
            dlq_max_count=self.dlq_max_count,
            durable_replicas=self.durable_replicas,
            durable_timeout_ms=int(self.durable_timeout_s * 1000),
        )


_SEED_NAMES = (
    "WORKER_MEMORY_SOFT_LIMIT",
    "WORKER_MEMORY_HARD_LIMIT",
    "WORKER_RECYCLE_AFTER_JOBS",
    "WORKER_RECYCLE_AFTER_HOURS",
)


def _env_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "settings"
    head = str(loc[0])
    if head in FIELD_PREFIX and len(loc) > 1:
        return f"{FIELD_PREFIX[head]}{loc[1]}"
    if head.isupper():
        return head  # an alias: already the variable's name
    if head == "pod_name":
        return "POD_NAME"
    return f"JQW_{head.upper()}"


def load(**overrides: object) -> WorkerSettings:
    """Read the environment (and ``JQW_CONFIG_FILE``); on error raise ``ConfigError``
    naming each bad variable and what it expects."""
    environ: dict[str, str] = {}
    config_file = overrides.get("config_file") or os.environ.get("JQW_CONFIG_FILE")
    if config_file:
        from dotenv import dotenv_values

        if not os.path.isfile(str(config_file)):
            raise ConfigError(f"JQW_CONFIG_FILE: no such file: {config_file}")
        environ.update({k: v for k, v in dotenv_values(str(config_file)).items() if v is not None})
    environ.update(os.environ)
    values: dict[str, Any] = {}
    for field_name, mapping in collect(environ).items():
        values[field_name] = mapping
    for name in _SEED_NAMES:
        if name in environ and name not in os.environ:
            values[name] = environ[name]  # from the config file
    for name, value in environ.items():
        if name.startswith("JQW_") and name not in os.environ:
            values[name[4:].lower()] = value
    values.update(overrides)
    try:
        return WorkerSettings(**values)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = err["loc"]
            if _NAMED_MSG.match(msg) or (loc == () and ":" in msg):
                parts.append(msg)  # a cross-field check already names its variable
                continue
            parts.append(f"{_env_name(loc)}: {msg}")
        raise ConfigError("invalid configuration: " + "; ".join(parts)) from None
