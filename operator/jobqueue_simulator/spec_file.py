"""Read a JobQueue manifest (or a bare ``spec``) and resolve it as the operator does.

The simulator must see the same :class:`~jobqueue_operator.models.EffectiveSpec`
the operator would, so this goes through the operator's own
``JobQueueSpec.model_validate`` and ``models.resolve`` (the same path
``reconcile.Loop`` takes), with the operator's built-in defaults
(``OperatorDefaults()``: the seeds' 100 / 30 s / 10 / 5 s, 1..10, 60 s / 300 s)
unless the caller passes others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jobqueue_operator.effective import InvalidSpecError, OperatorDefaults, resolve
from jobqueue_operator.models import PAUSED_ANNOTATION, EffectiveSpec, JobQueueSpec


class SpecError(ValueError):
    """The file is not a JobQueue the operator would accept."""


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """The validated spec, its resolved form, and the name to show."""

    name: str
    spec: JobQueueSpec
    effective: EffectiveSpec

    @property
    def polling_interval_s(self) -> float:
        """The operator's tick (``pollingIntervalSeconds``; not part of the effective spec)."""
        return float(self.spec.polling_interval_seconds)


def parse_spec(
    text: str, *, name: str = "jobqueue", defaults: OperatorDefaults | None = None
) -> LoadedSpec:
    """Parse YAML: the first ``kind: JobQueue`` document, or a document that is a bare spec."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(f"{name}: not YAML: {exc}") from None
    body = _pick(documents, name)
    is_manifest = "spec" in body
    meta: dict[str, Any] = (body.get("metadata") or {}) if is_manifest else {}
    raw_spec = body["spec"] if is_manifest else body
    try:
        spec = JobQueueSpec.model_validate(raw_spec)
        paused = spec.paused or (meta.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true"
        effective = resolve(spec, defaults or OperatorDefaults(), paused=paused)
    except (ValidationError, InvalidSpecError) as exc:
        raise SpecError(f"{name}: the operator would refuse this spec: {exc}") from None
    return LoadedSpec(str(meta.get("name") or name), spec, effective)


def load_spec(path: Path, defaults: OperatorDefaults | None = None) -> LoadedSpec:
    """Read and resolve a spec file."""
    return parse_spec(path.read_text(encoding="utf-8"), name=path.stem, defaults=defaults)


def _pick(documents: list[Any], name: str) -> dict[str, Any]:
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "JobQueue":
            return doc
    for doc in documents:
        if isinstance(doc, dict) and "kind" not in doc:
            return doc
    raise SpecError(f"{name}: no JobQueue document and no bare spec found")
