"""What the admission webhook decides about a JobQueue, as pure functions.

The webhook refuses what needs other objects to judge: a target (its API
group, kind and name) that an HPA or another JobQueue already scales (two
writers of one replica count fight, each undoing the other's count every
poll). It only judges a JobQueue that is created or whose target changes, so
an update of anything else (a finalizer removed, a threshold tuned) is never
blocked by a conflict that already existed. The scale loop still checks at run
time (``claims.conflict``), for objects made while the webhook was down and for
HPAs created later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobqueue_operator.kedascaler.ownership import describe_hpa
from jobqueue_operator.targets import TargetRef, ref_from


def target_of(spec: Mapping[str, Any] | None) -> TargetRef | None:
    """``spec.scaleTargetRef`` with its defaults, or ``None`` when it names nothing.

    A JobQueue stored before ``apiVersion`` and ``kind`` existed has only ``name``:
    it means the same Deployment as one with the defaults spelled out.
    """
    return ref_from((spec or {}).get("scaleTargetRef"))


def target_changed(
    operation: str | None, old_spec: Mapping[str, Any] | None, new_spec: Mapping[str, Any] | None
) -> bool:
    """Whether this request makes the JobQueue claim a target it did not claim before."""
    if operation == "CREATE":
        return True
    old, new = target_of(old_spec), target_of(new_spec)
    return operation == "UPDATE" and (old and old.key) != (new and new.key)


def claimed_by(
    name: str, target: TargetRef, jobqueues: Iterable[str], hpas: Iterable[str]
) -> str | None:
    """Why ``name`` may not scale ``target``: the first other claimant, in one line."""
    for hpa in sorted(hpas):
        return (
            f"spec.scaleTargetRef: {target.describe()} is already scaled by "
            f"{describe_hpa(hpa)}; delete it or point the JobQueue elsewhere"
        )
    others = sorted(set(jobqueues) - {name})
    if others:
        return (
            f"spec.scaleTargetRef: {target.describe()} is already scaled by JobQueue "
            f"{others[0]}; one replica count can have only one writer"
        )
    return None
