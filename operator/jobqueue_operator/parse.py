"""Phase 1 of a poll: the JobQueue's live spec with every default resolved.

Pure: the body as kopf hands it, the operator's settings for the defaults. A
spec the API server let through but the operator cannot use (an admission
webhook that was not installed, a spec written before a field's rules
tightened) becomes an ``InvalidSpec`` problem on the tick, not an exception,
and the polling interval still applies so a fix is picked up on time.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from jobqueue_operator.effective import InvalidSpecError, resolve
from jobqueue_operator.models import PAUSED_ANNOTATION, EffectiveSpec, JobQueueSpec
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import Problem, Tick, effective_record
from jobqueue_operator.status_models import EffectiveRecord

DEFAULT_INTERVAL_S = 5.0


class SpecCache:
    """One JobQueue's last parse, reused while its spec, pause and defaults stand still.

    Validating the spec was a third of the operator's CPU at 1,000 JobQueues (the
    status the operator writes changes the body every few ticks, the spec almost
    never). Comparing the raw spec with the one parsed last is a dict comparison
    in C; only a change pays for validation again.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: _Parsed | Problem | None = None

    def parse(
        self,
        body: Mapping[str, Any],
        base: Tick,
        settings: OperatorSettings,
        defaults_source: str,
    ) -> tuple[JobQueueSpec, EffectiveSpec, Tick] | Tick:
        """The live spec with every default resolved, or a tick carrying InvalidSpec."""
        raw = dict(body.get("spec") or {})
        pause = body.get("metadata", {}).get("annotations", {}).get(PAUSED_ANNOTATION)
        key = (id(settings), defaults_source, pause)
        if self._value is None or self._key is None or self._key[:3] != key or self._key[3] != raw:
            self._value = _validate(body, settings, defaults_source)
            # A deep copy: kopf may reuse and mutate the dicts it handed over.
            self._key = (*key, copy.deepcopy(raw))
        parsed = self._value
        if isinstance(parsed, Problem):
            return replace(base, problem=parsed)
        spec, effective = parsed.spec, parsed.effective
        tick = replace(
            base,
            target=spec.scale_target_ref.ref(),
            paused=effective.paused,
            min_replicas=effective.min_replicas,
            max_replicas=effective.max_replicas,
            effective=parsed.record,
        )
        return spec, effective, tick


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A valid spec, with its ``status.effective`` record built once, not every poll."""

    spec: JobQueueSpec
    effective: EffectiveSpec
    record: EffectiveRecord


def _validate(
    body: Mapping[str, Any], settings: OperatorSettings, defaults_source: str
) -> _Parsed | Problem:
    meta = body.get("metadata", {})
    try:
        spec = JobQueueSpec.model_validate(body.get("spec") or {})
        paused = spec.paused or meta.get("annotations", {}).get(PAUSED_ANNOTATION) == "true"
        effective = resolve(spec, settings.scaling_defaults(), paused=paused)
    except (ValidationError, InvalidSpecError) as exc:
        return Problem("InvalidSpec", _short(exc))
    return _Parsed(spec, effective, effective_record(effective, defaults_source))


def interval(body: Mapping[str, Any]) -> float:
    """The spec's interval even when the rest of the spec is invalid; 1..300 s."""
    raw = (body.get("spec") or {}).get("pollingIntervalSeconds", DEFAULT_INTERVAL_S)
    try:
        return min(max(float(raw), 1.0), 300.0)
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL_S


def _short(exc: Exception) -> str:
    """A one-paragraph message for a condition; pydantic's errors become one line each."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        return "invalid spec: " + "; ".join(parts)
    return f"invalid spec: {exc}"
