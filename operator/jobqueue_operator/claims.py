"""Who else scales a target: other JobQueues (the older one keeps it) and HPAs.

Two scalers on one target fight: each undoes the other's count every poll. A
target is its (API group, kind, name), so a StatefulSet and a Deployment of the
same name are two targets.
The loop refuses to act when :func:`conflict` names a rival.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jobqueue_operator.kedascaler.ownership import describe_hpa
from jobqueue_operator.ports import KubePort
from jobqueue_operator.targets import TargetKey

#: The HPAs of a namespace are listed this often (one LIST shared by its JobQueues).
HPA_REFRESH_S = 10.0


@dataclass(frozen=True, order=True)
class Claim:
    """Something that scales a target: a JobQueue (the older one keeps it) or an HPA."""

    created: str  # RFC 3339, sorts in time order
    name: str
    kind: str = "JobQueue"
    #: The target, where the claim comes from a namespace-wide list (the HPAs).
    target: TargetKey = ("", "", "")


#: (namespace, target) → the JobQueues that scale it, read from the operator's
#: in-memory index of its JobQueue watch (``handlers.py``): no API request.
ClaimsOn = Callable[[str, TargetKey], Iterable[Claim]]


def no_claims(namespace: str, target: TargetKey) -> Iterable[Claim]:
    """For a loop run outside kopf (tests, the simulator): nobody else claims anything."""
    return ()


def conflict(me: Claim, target: str, claims: Iterable[Claim]) -> str | None:
    """Why ``me`` must not scale ``target`` (as messages name it): an HPA or an older JobQueue does.

    The oldest JobQueue (creation time, then name) keeps the target, so exactly one
    of several claimants acts and the choice survives operator restarts.
    """
    older: list[Claim] = []
    for claim in claims:
        if claim.kind == "HorizontalPodAutoscaler":
            return f"{describe_hpa(claim.name)} already scales {target}"
        if claim.kind != "JobQueue":
            return f"{claim.kind} {claim.name} already scales {target}"
        if claim < me:
            older.append(claim)
    if older:
        return f"JobQueue {min(older).name} already scales {target}"
    return None


@dataclass
class HpaClaims:
    """The HPAs of each namespace as claims, one LIST per namespace per :data:`HPA_REFRESH_S`.

    Shared by every loop of a namespace. (A watch would be cheaper still, but kopf
    holds every handler until an index's first list succeeds, so a missing HPA
    right would stop the whole operator instead of showing a condition on the
    JobQueues.)
    """

    kube: KubePort
    _cache: dict[str, tuple[float, list[Claim]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def of(self, namespace: str, now: float) -> list[Claim]:
        """The HPAs of ``namespace`` as claims on their targets (raises KubeError)."""
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:  # many loops starting together list once, not once each
            cached = self._cache.get(namespace)
            if cached is not None and now - cached[0] < HPA_REFRESH_S:
                return cached[1]
            claims = [
                Claim("", name, kind="HorizontalPodAutoscaler", target=target.key)
                for name, target in await self.kube.hpa_targets(namespace)
            ]
            self._cache[namespace] = (now, claims)
            return claims
