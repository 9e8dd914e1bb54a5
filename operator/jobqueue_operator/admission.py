"""What the admission webhook decides about a JobQueue, as pure functions.

The webhook refuses what needs other objects to judge: a target that an HPA or
another JobQueue already scales (two writers of one replica count fight, each
undoing the other's count every poll). It only judges a JobQueue that is created or
whose target changes, so an update of anything else (a finalizer removed, a
threshold tuned) is never blocked by a conflict that already existed. The
scale loop still checks at run time (``claims.conflict``), for objects made
while the webhook was down and for HPAs created later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobqueue_operator.kedascaler.ownership import describe_hpa


def target_of(spec: Mapping[str, Any] | None) -> str | None:
    """The name in ``spec.scaleTargetRef``, or ``None`` when there is none."""
    ref = (spec or {}).get("scaleTargetRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) and name else None


def target_changed(
    operation: str | None, old_spec: Mapping[str, Any] | None, new_spec: Mapping[str, Any] | None
) -> bool:
    """Whether this request makes the JobQueue claim a target it did not claim before."""
    if operation == "CREATE":
        return True
    return operation == "UPDATE" and target_of(old_spec) != target_of(new_spec)


def claimed_by(name: str, target: str, jobqueues: Iterable[str], hpas: Iterable[str]) -> str | None:
    """Why ``name`` may not scale ``target``: the first other claimant, in one line."""
    for hpa in sorted(hpas):
        return (
            f"spec.scaleTargetRef: Deployment {target} is already scaled by "
            f"{describe_hpa(hpa)}; delete it or point the JobQueue elsewhere"
        )
    others = sorted(set(jobqueues) - {name})
    if others:
        return (
            f"spec.scaleTargetRef: Deployment {target} is already scaled by JobQueue "
            f"{others[0]}; one replica count can have only one writer"
        )
    return None
