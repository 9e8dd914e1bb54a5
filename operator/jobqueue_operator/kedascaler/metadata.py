"""A ScaledObject trigger's metadata, parsed and checked (pure).

KEDA passes the trigger's ``metadata`` map (strings only) with every call.
``queue`` names the queue (several, comma-separated, are summed like a
JobQueue's ``spec.queues``); ``mode`` picks what the metric is:

* ``backlog`` (default): jobs waiting (due delayed jobs included) plus jobs in
  flight, so the HPA keeps the pods that are busy with running jobs; the HPA's
  target is ``targetBacklogPerReplica`` (default 1, i.e. one job per pod) and
  the trigger is active above ``activationBacklog`` (default 0).
* ``replicas``: the replica count our policy decides (``jobqueue_operator.policy``)
  from the same poll, with a target of 1, so the HPA's AverageValue maths hands
  that count through unchanged. The policy's knobs are the JobQueue spec's
  fields, flattened (``scaleUpQueueDepth`` is ``spec.scaleUp.queueDepth``).

Anything else is refused with one line naming the key, so a typo does not
silently fall back to a default.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from jobqueue_operator.effective import InvalidSpecError, OperatorDefaults, resolve
from jobqueue_operator.models import EffectiveSpec, JobQueueSpec

#: The trigger metadata keys KEDA itself reads for an ``external`` trigger; passed on to us.
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl"})
MAX_QUEUES = 20

#: metadata key → where it goes in a JobQueue spec (``mode: replicas`` only).
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "minReplicas": ("minReplicas",),
    "maxReplicas": ("maxReplicas",),
    "priorityTier": ("priorityTier",),
    "scaleUpQueueDepth": ("scaleUp", "queueDepth"),
    "scaleUpQueueLatencySeconds": ("scaleUp", "queueLatencySeconds"),
    "scaleUpCooldownSeconds": ("scaleUp", "cooldownSeconds"),
    "scaleUpMaxStep": ("scaleUp", "maxStep"),
    "podStartupSeconds": ("scaleUp", "podStartupSeconds"),
    "scaleDownQueueDepth": ("scaleDown", "queueDepth"),
    "scaleDownQueueLatencySeconds": ("scaleDown", "queueLatencySeconds"),
    "scaleDownCooldownSeconds": ("scaleDown", "cooldownSeconds"),
    "scaleDownStep": ("scaleDown", "step"),
    "scaleToZeroAfterSeconds": ("scaleDown", "scaleToZeroAfterSeconds"),
    "allowDisruption": ("scaleDown", "allowDisruption"),
    "sloMaxWaitSeconds": ("slo", "maxWaitSeconds"),
    "concurrencyPerPod": ("slo", "concurrencyPerPod"),
}
BACKLOG_KEYS = frozenset({"targetBacklogPerReplica", "activationBacklog"})
COMMON_KEYS = frozenset({"queue", "mode"})
_SPEC_PATHS = {path: key for key, path in POLICY_KEYS.items()}
_METRIC_CHARS = re.compile(r"[^a-z0-9-]+")
#: The HPA's external metric names end up in URL paths; keep them short and plain.
MAX_METRIC_NAME = 60


class Mode(enum.StrEnum):
    BACKLOG = "backlog"
    REPLICAS = "replicas"


class BadMetadataError(ValueError):
    """The trigger metadata cannot work; the message names the key, on one line."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """What one trigger asks for."""

    queues: tuple[str, ...]
    mode: Mode
    #: The HPA target per replica: backlog jobs per pod, or 1 for a replica count.
    target: float
    #: The backlog above which the trigger is active (backlog mode).
    activation: float
    #: The resolved policy (replicas mode only).
    policy: EffectiveSpec | None

    @property
    def metric_name(self) -> str:
        """The metric this trigger serves, the same on every call for the same metadata."""
        slug = _METRIC_CHARS.sub("-", "-".join(self.queues).lower()).strip("-") or "queue"
        return f"jobqueue-{self.mode.value}-{slug}"[:MAX_METRIC_NAME].rstrip("-")


def parse(metadata: Mapping[str, str]) -> Trigger:
    """The trigger of ``metadata``; raises :class:`BadMetadataError` naming the key."""
    mode_text = metadata.get("mode", Mode.BACKLOG.value).strip().lower()
    try:
        mode = Mode(mode_text)
    except ValueError:
        raise BadMetadataError(
            f"metadata.mode {mode_text!r} is not one of: backlog, replicas"
        ) from None
    mode_keys = BACKLOG_KEYS if mode is Mode.BACKLOG else frozenset(POLICY_KEYS)
    allowed = COMMON_KEYS | KEDA_KEYS | mode_keys
    for key in sorted(metadata):
        if key not in allowed:
            raise BadMetadataError(_unknown_key(key, mode))
    queues = _queues(metadata.get("queue", ""))
    if mode is Mode.BACKLOG:
        target = _positive(metadata, "targetBacklogPerReplica", 1.0)
        activation = _non_negative(metadata, "activationBacklog", 0.0)
        return Trigger(queues, mode, target, activation, None)
    return Trigger(queues, mode, 1.0, 0.0, _policy(metadata, queues))


def _unknown_key(key: str, mode: Mode) -> str:
    if mode is Mode.BACKLOG and key in POLICY_KEYS:
        return f"metadata.{key} is a policy setting: it needs mode: replicas"
    if mode is Mode.REPLICAS and key in BACKLOG_KEYS:
        return f"metadata.{key} applies to mode: backlog only"
    return f"metadata.{key} is not a setting of this scaler (queue, mode, ...)"


def _queues(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise BadMetadataError("metadata.queue is missing: name the queue to scale on")
    if len(names) > MAX_QUEUES:
        raise BadMetadataError(f"metadata.queue names {len(names)} queues; at most {MAX_QUEUES}")
    if len(set(names)) != len(names):
        raise BadMetadataError("metadata.queue names a queue twice")
    try:
        JobQueueSpec.model_validate(
            {"scaleTargetRef": {"name": "x"}, "redis": {"host": "x"}, "queues": list(names)}
        )
    except ValidationError:
        raise BadMetadataError(
            f"metadata.queue {text!r} is not a valid queue name (1-200 characters, "
            "no braces, whitespace or glob characters)"
        ) from None
    return names


def _number(metadata: Mapping[str, str], key: str, default: float) -> float:
    text = metadata.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadMetadataError(f"metadata.{key} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadMetadataError(f"metadata.{key} {text!r} is not a finite number")
    return value


def _positive(metadata: Mapping[str, str], key: str, default: float) -> float:
    value = _number(metadata, key, default)
    if value <= 0:
        raise BadMetadataError(f"metadata.{key} must be above 0, not {metadata[key]!r}")
    return value


def _non_negative(metadata: Mapping[str, str], key: str, default: float) -> float:
    value = _number(metadata, key, default)
    if value < 0:
        raise BadMetadataError(f"metadata.{key} must not be negative, not {metadata[key]!r}")
    return value


def _policy(metadata: Mapping[str, str], queues: tuple[str, ...]) -> EffectiveSpec:
    """The JobQueue spec the policy keys describe, resolved as the operator resolves it."""
    spec: dict[str, object] = {
        # The target and Redis are KEDA's and this scaler's business; the policy ignores them.
        "scaleTargetRef": {"name": "keda-scaled-object"},
        "redis": {"host": "unused"},
        "queues": list(queues),
        # KEDA's ScaledObject bounds the replicas; by default our policy may go to zero.
        "minReplicas": 0,
    }
    for key, path in POLICY_KEYS.items():
        if key in metadata:
            node = spec
            for part in path[:-1]:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[path[-1]] = metadata[key].strip()
    try:
        return resolve(JobQueueSpec.model_validate(spec), OperatorDefaults(), paused=False)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        found = _SPEC_PATHS.get(tuple(str(p) for p in first["loc"]))
        where = f"metadata.{found}" if found else "the policy settings"
        raise BadMetadataError(f"{where}: {first['msg']}") from None
    except InvalidSpecError as exc:
        raise BadMetadataError(f"the policy settings: {exc}") from None
