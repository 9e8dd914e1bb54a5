"""What a JobQueue scales: ``spec.scaleTargetRef`` as a value, and how its ``/scale`` is found.

Pure: no client library and no clock of its own. Any namespaced kind with a
``/scale`` subresource can be a target, as with KEDA's ScaledObject and the
HPA. The built-in workload kinds of ``apps/v1`` are known here; any other kind
is looked up in the API server's discovery document of its group and version
(``kube.Kube`` fetches it and keeps it in a :class:`DiscoveryCache`), which maps
the kind to its plural and says whether ``<plural>/scale`` exists.

A target the cluster cannot scale (no such group/version, no such kind, no
``/scale``) resolves to a one-line message that names the field to fix, which
``kube.Kube`` raises as ``ports.TargetKindError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_API_VERSION = "apps/v1"
DEFAULT_KIND = "Deployment"
FIELD = "spec.scaleTargetRef"

#: group/version: a DNS subdomain, then a version such as v1, v2beta1. The core
#: group (plain ``v1``) is left out on purpose: its only kind with ``/scale`` is
#: ReplicationController, which nobody should autoscale any more.
API_VERSION_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"  # the group
    r"/v[0-9]+((alpha|beta)[0-9]+)?$"
)
KIND_PATTERN = r"^[A-Z][A-Za-z0-9]*$"

#: The kinds whose plural is known without discovery (and which have ``/scale``).
BUILTIN_PLURALS: Mapping[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("apps/v1", "ReplicaSet"): "replicasets",
}

#: A discovery document that has the wanted kind with ``/scale`` is re-read this
#: often (a plural practically never changes); one that does not, much sooner, so
#: a CRD installed after the JobQueue is picked up within a few polls.
KNOWN_TTL_S = 600.0
RETRY_TTL_S = 30.0

#: (group, kind, name): what identifies a target whatever version it is named by.
TargetKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class TargetRef:
    """One scale target in the JobQueue's namespace."""

    name: str
    kind: str = DEFAULT_KIND
    api_version: str = DEFAULT_API_VERSION

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> TargetKey:
        """Version-free: ``apps/v1`` and ``apps/v1beta2`` name the same object."""
        return (self.group, self.kind, self.name)

    @property
    def is_deployment(self) -> bool:
        return self.group == "apps" and self.kind == "Deployment"

    def describe(self) -> str:
        """``Deployment worker``: how messages, Events and logs name the target."""
        return f"{self.kind} {self.name}"

    def __str__(self) -> str:
        """``Deployment/worker``: ``status.target`` and the Target column."""
        return f"{self.kind}/{self.name}"


def ref_from(raw: object) -> TargetRef | None:
    """A ``scaleTargetRef`` mapping with the CRD's defaults applied; ``None`` without a name.

    For the webhook, the claims index and HPAs, which see raw objects (an object
    stored before the fields had defaults has only ``name``).
    """
    if not isinstance(raw, Mapping):
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        return None
    kind, api_version = raw.get("kind"), raw.get("apiVersion")
    return TargetRef(
        name=name,
        kind=kind if isinstance(kind, str) and kind else DEFAULT_KIND,
        api_version=(
            api_version if isinstance(api_version, str) and api_version else DEFAULT_API_VERSION
        ),
    )


@dataclass(frozen=True, slots=True)
class ScaleResource:
    """Where a target's ``/scale`` lives: ``/apis/<group>/<version>/namespaces/*/<plural>``."""

    group: str
    version: str
    plural: str

    def describe(self) -> str:
        """What to grant: ``statefulsets/scale in group apps``."""
        return f"{self.plural}/scale in API group {self.group}"


#: One discovery document: (resource name, kind) of every resource of a group/version,
#: subresources included (``deployments/scale``); ``None`` when it is not served.
Listing = tuple[tuple[str, str], ...] | None


def builtin_resource(ref: TargetRef) -> ScaleResource | None:
    """The ``/scale`` of an ``apps/v1`` workload kind, known without asking the API server."""
    plural = BUILTIN_PLURALS.get((ref.api_version, ref.kind))
    return None if plural is None else ScaleResource(ref.group, ref.version, plural)


def resolve(ref: TargetRef, listing: Listing) -> ScaleResource | str:
    """The target's ``/scale`` from its group/version's discovery document.

    Or why there is none, in one line naming ``spec.scaleTargetRef``: the
    group/version is not served, has no such kind, or the kind has no ``/scale``.
    """
    if not ref.group:
        return f"{FIELD}.apiVersion: {ref.api_version}: the core API group cannot be a target"
    if listing is None:
        return (
            f"{FIELD}.apiVersion: {ref.api_version} is not served by this cluster "
            "(is the CRD installed, and is this version served?)"
        )
    plurals = [name for name, kind in listing if kind == ref.kind and "/" not in name]
    if not plurals:
        return f"{FIELD}.kind: {ref.api_version} has no kind {ref.kind}"
    names = {name for name, _ in listing}
    if f"{plurals[0]}/scale" not in names:
        return (
            f"{FIELD}.kind: {ref.kind} ({ref.api_version}) has no /scale subresource, so it "
            "cannot be scaled (a CRD declares one under subresources.scale)"
        )
    return ScaleResource(ref.group, ref.version, plurals[0])


def _finds(listing: Listing, kind: str) -> bool:
    return listing is not None and any(k == kind and "/" not in n for n, k in listing)


@dataclass
class DiscoveryCache:
    """The discovery documents read so far, by group/version, with when they were read.

    Shared by every loop: one GET per group/version per :data:`KNOWN_TTL_S`, or per
    :data:`RETRY_TTL_S` while the kind asked for is missing from it.
    """

    _listings: dict[str, tuple[float, Listing]] = field(default_factory=dict)

    def due(self, ref: TargetRef, now: float) -> bool:
        """Whether ``ref``'s group/version must be (re-)read before it can be resolved."""
        entry = self._listings.get(ref.api_version)
        if entry is None:
            return True
        at, listing = entry
        ttl = KNOWN_TTL_S if _finds(listing, ref.kind) else RETRY_TTL_S
        return now - at >= ttl

    def store(self, api_version: str, listing: Listing, now: float) -> None:
        self._listings[api_version] = (now, listing)

    def resolve(self, ref: TargetRef) -> ScaleResource | str:
        """:func:`resolve` on the stored document (call :meth:`store` first when :meth:`due`)."""
        entry = self._listings.get(ref.api_version)
        return resolve(ref, None if entry is None else entry[1])
