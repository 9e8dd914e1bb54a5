"""A JobQueue's spec is validated again only when the spec, the pause or the defaults move."""

from __future__ import annotations

import copy
from typing import Any

from jobqueue_operator.models import PAUSED_ANNOTATION
from jobqueue_operator.parse import SpecCache
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import Tick

BASE = Tick(now=1000.0, generation=1)
SETTINGS = OperatorSettings()


def body(**spec: Any) -> dict[str, Any]:
    full = {"scaleTargetRef": {"name": "w"}, "redis": {"host": "r"}, "queues": ["q"], **spec}
    return {"metadata": {"name": "jq", "annotations": {}}, "spec": full}


def parsed(cache: SpecCache, b: dict[str, Any]) -> Any:
    return cache.parse(b, BASE, SETTINGS, "defaults")


def test_an_unchanged_spec_is_not_validated_again() -> None:
    cache = SpecCache()
    first = parsed(cache, body(maxReplicas=7))
    again = parsed(cache, copy.deepcopy(body(maxReplicas=7)))
    assert not isinstance(first, Tick)
    assert not isinstance(again, Tick)
    assert again[0] is first[0]  # the same model object: no second validation
    assert again[2].max_replicas == 7


def test_a_nested_change_is_seen_even_when_the_caller_mutated_its_dict() -> None:
    cache = SpecCache()
    b = body(scaleUp={"queueDepth": 50})
    first = parsed(cache, b)
    b["spec"]["scaleUp"]["queueDepth"] = 80  # kopf hands over the same dicts again
    second = parsed(cache, b)
    assert not isinstance(first, Tick)
    assert not isinstance(second, Tick)
    assert second[0] is not first[0]
    assert second[1].up_depth == 80


def test_the_pause_annotation_and_the_defaults_are_part_of_the_key() -> None:
    cache = SpecCache()
    b = body()
    running = parsed(cache, b)
    b["metadata"]["annotations"][PAUSED_ANNOTATION] = "true"
    paused = parsed(cache, b)
    assert not isinstance(running, Tick)
    assert not isinstance(paused, Tick)
    assert (running[2].paused, paused[2].paused) == (False, True)
    other = OperatorSettings().with_defaults_from({"MAX_WORKERS": "60"})
    with_other = cache.parse(b, BASE, other, "ConfigMap x")
    assert not isinstance(with_other, Tick)
    assert with_other[1].max_replicas == 60


def test_an_invalid_spec_stays_a_problem_until_it_is_fixed() -> None:
    cache = SpecCache()
    bad = body(minReplicas=5, maxReplicas=2)
    for _ in range(2):
        tick = parsed(cache, bad)
        assert isinstance(tick, Tick)
        assert tick.problem is not None
        assert "minReplicas" in tick.problem.message
    fixed = parsed(cache, body(minReplicas=1, maxReplicas=2))
    assert not isinstance(fixed, Tick)
    assert fixed[2].problem is None
