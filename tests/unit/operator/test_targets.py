"""spec.scaleTargetRef: its defaults, its identity, and how discovery finds its /scale."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from jobqueue_operator.admission import claimed_by, target_changed, target_of
from jobqueue_operator.models import JobQueueSpec, ScaleTargetRef
from jobqueue_operator.targets import (
    KNOWN_TTL_S,
    RETRY_TTL_S,
    DiscoveryCache,
    ScaleResource,
    TargetRef,
    builtin_resource,
    ref_from,
    resolve,
)

BASE: dict[str, Any] = {"redis": {"host": "r"}, "queues": ["q"]}

#: What /apis/example.com/v1 lists for a CRD with a scale subresource and one without.
LISTING = (
    ("workerpools", "WorkerPool"),
    ("workerpools/scale", "Scale"),
    ("workerpools/status", "WorkerPool"),
    ("reports", "Report"),
    ("reports/status", "Report"),
)


def test_a_name_alone_is_the_deployment_it_always_was() -> None:
    spec = JobQueueSpec.model_validate({**BASE, "scaleTargetRef": {"name": "w"}})
    ref = spec.scale_target_ref.ref()
    assert ref == TargetRef("w", "Deployment", "apps/v1")
    assert (ref.group, ref.version, ref.key) == ("apps", "v1", ("apps", "Deployment", "w"))
    assert str(ref) == "Deployment/w"
    assert ref.describe() == "Deployment w"
    assert ref.is_deployment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"kind": "StatefulSet", "name": "s"}, TargetRef("s", "StatefulSet", "apps/v1")),
        (
            {"apiVersion": "example.com/v1alpha1", "kind": "WorkerPool", "name": "p"},
            TargetRef("p", "WorkerPool", "example.com/v1alpha1"),
        ),
    ],
)
def test_kind_and_api_version_are_read(raw: dict[str, str], expected: TargetRef) -> None:
    assert ScaleTargetRef.model_validate(raw).ref() == expected
    assert ref_from(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "w", "kind": "deployment"},  # not a kind
        {"name": "w", "apiVersion": "v1", "kind": "ReplicationController"},  # core group
        {"name": "w", "apiVersion": "apps"},  # no version
        {"name": "w", "apiVersion": "Apps/v1"},
        {"name": "w", "namespace": "other"},
    ],
)
def test_the_model_refuses_what_the_schema_refuses(raw: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ScaleTargetRef.model_validate(raw)


def test_ref_from_raw_objects_applies_the_defaults_and_needs_a_name() -> None:
    assert ref_from({"name": "w"}) == TargetRef("w")
    assert ref_from({"name": "w", "kind": "", "apiVersion": None}) == TargetRef("w")
    assert ref_from({"kind": "StatefulSet"}) is None
    assert ref_from(None) is None
    assert ref_from("w") is None


def test_the_same_object_by_another_version_is_the_same_target() -> None:
    assert (
        TargetRef("w", api_version="apps/v1").key == TargetRef("w", api_version="apps/v1beta2").key
    )
    assert TargetRef("w").key != TargetRef("w", "StatefulSet").key
    assert TargetRef("w", "Pool", "a.example/v1").key != TargetRef("w", "Pool", "b.example/v1").key


def test_builtin_kinds_need_no_discovery() -> None:
    assert builtin_resource(TargetRef("w")) == ScaleResource("apps", "v1", "deployments")
    assert builtin_resource(TargetRef("s", "StatefulSet")) == ScaleResource(
        "apps", "v1", "statefulsets"
    )
    assert builtin_resource(TargetRef("p", "WorkerPool", "example.com/v1")) is None
    assert builtin_resource(TargetRef("w", api_version="apps/v1beta2")) is None


def test_discovery_maps_a_kind_to_its_plural_when_it_has_scale() -> None:
    ref = TargetRef("p", "WorkerPool", "example.com/v1")
    assert resolve(ref, LISTING) == ScaleResource("example.com", "v1", "workerpools")


@pytest.mark.parametrize(
    ("ref", "listing", "words"),
    [
        (TargetRef("r", "Report", "example.com/v1"), LISTING, "has no /scale subresource"),
        (TargetRef("x", "Nothing", "example.com/v1"), LISTING, "has no kind Nothing"),
        (TargetRef("x", "Pool", "missing.example/v1"), None, "is not served by this cluster"),
        (TargetRef("x", "ReplicationController", "v1"), (), "core API group"),
    ],
)
def test_an_unscalable_kind_is_one_line_naming_the_field(
    ref: TargetRef, listing: Any, words: str
) -> None:
    message = resolve(ref, listing)
    assert isinstance(message, str)
    assert message.startswith("spec.scaleTargetRef.")
    assert words in message
    assert "\n" not in message


def test_the_discovery_cache_rereads_soon_while_the_kind_is_missing() -> None:
    cache = DiscoveryCache()
    pool = TargetRef("p", "WorkerPool", "example.com/v1")
    later = TargetRef("x", "Later", "example.com/v1")
    assert cache.due(pool, 0.0)
    cache.store("example.com/v1", LISTING, 0.0)
    assert not cache.due(pool, KNOWN_TTL_S - 1)
    assert cache.due(pool, KNOWN_TTL_S)
    assert not cache.due(later, RETRY_TTL_S - 1)
    assert cache.due(later, RETRY_TTL_S), "a CRD installed later is found within 30 s"
    assert isinstance(cache.resolve(later), str)
    cache.store("example.com/v1", (*LISTING, ("laters", "Later"), ("laters/scale", "Scale")), 40)
    assert cache.resolve(later) == ScaleResource("example.com", "v1", "laters")
    assert isinstance(cache.resolve(TargetRef("x", "K", "other.example/v1")), str)


def test_admission_keys_on_group_kind_and_name() -> None:
    dep = {"scaleTargetRef": {"name": "w"}}
    dep_spelled = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}}
    sts = {"scaleTargetRef": {"kind": "StatefulSet", "name": "w"}}
    assert target_of(dep) == target_of(dep_spelled)
    assert not target_changed("UPDATE", dep, dep_spelled), "defaults spelled out: same target"
    assert target_changed("UPDATE", dep, sts), "same name, another kind: a new claim"
    assert target_changed("CREATE", dep, dep)
    assert not target_changed("DELETE", dep, sts)
    ref = target_of(sts)
    assert ref is not None
    message = claimed_by("q", ref, ["q", "other"], [])
    assert message == (
        "spec.scaleTargetRef: StatefulSet w is already scaled by JobQueue other; "
        "one replica count can have only one writer"
    )
    assert claimed_by("q", ref, ["q"], []) is None
