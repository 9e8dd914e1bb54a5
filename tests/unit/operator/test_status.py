"""The status patch: conditions, the decision history, times that survive a restart."""

from __future__ import annotations

from jobqueue_operator.policy import Action, Decision, Limit, Observation, Reason
from jobqueue_operator.status import (
    CONDITION_TYPES,
    MAX_DECISIONS,
    Problem,
    Tick,
    build,
    from_rfc3339,
    same_decision,
    to_rfc3339,
)

NOW = 1_795_000_000.25


def _decision(
    action: Action = Action.HOLD,
    reason: Reason = Reason.WITHIN_BAND,
    desired: int = 3,
    limits: frozenset[Limit] = frozenset(),
) -> Decision:
    return Decision(desired, action, reason, limits, "because")


def _conds(status: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in status["conditions"]}  # type: ignore[attr-defined, index]


def test_times_round_trip_with_milliseconds() -> None:
    assert to_rfc3339(NOW) == "2026-11-18T11:06:40.250Z"
    assert from_rfc3339(to_rfc3339(NOW)) == NOW
    assert from_rfc3339("garbage") is None
    assert from_rfc3339(None) is None


def test_healthy_tick() -> None:
    tick = Tick(
        now=NOW,
        generation=4,
        target="w",
        current_replicas=3,
        decision=_decision(Action.SCALE_UP, Reason.QUEUE_DEPTH, 5),
        observation=Observation(depth=120, oldest_age_s=3.14159),
        last_scale_up=NOW,
    )
    status = build({}, tick)
    assert status["observedGeneration"] == 4
    assert status["desiredReplicas"] == 5
    assert status["lastScaleUpTime"] == to_rfc3339(NOW)
    assert "lastScaleDownTime" not in status
    assert status["observed"]["oldestAgeSeconds"] == 3.142
    conds = _conds(status)
    assert set(conds) == set(CONDITION_TYPES)
    assert conds["Ready"]["status"] == "True"
    assert conds["Active"]["status"] == "True"
    assert conds["MetricsAvailable"]["status"] == "True"
    assert conds["Paused"]["status"] == "False"
    assert all(c["observedGeneration"] == 4 for c in conds.values())


def test_problem_sets_ready_false_with_its_reason() -> None:
    tick = Tick(
        now=NOW, generation=1, problem=Problem("TargetNotFound", "Deployment w does not exist")
    )
    status = build({}, tick)
    ready = _conds(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "TargetNotFound")
    assert status["lastReason"] == "TargetNotFound"


def test_metrics_error_sets_metrics_available_false() -> None:
    tick = Tick(
        now=NOW,
        generation=1,
        current_replicas=2,
        metrics_error="Redis at x: down",
        consecutive_failures=3,
        decision=_decision(
            reason=Reason.METRICS_UNAVAILABLE, desired=2, limits=frozenset({Limit.MISSING_DATA})
        ),
    )
    conds = _conds(build({}, tick))
    assert conds["MetricsAvailable"]["status"] == "False"
    assert "3 failures" in str(conds["MetricsAvailable"]["message"])
    assert conds["Ready"]["reason"] == "MetricsUnavailable"
    assert conds["ScalingLimited"]["reason"] == "MissingData"


def test_transition_time_moves_only_on_a_flip() -> None:
    first = build(
        {},
        Tick(
            now=NOW,
            generation=1,
            current_replicas=1,
            decision=_decision(),
            observation=Observation(0, 0),
        ),
    )
    same = build(
        first,
        Tick(
            now=NOW + 10,
            generation=1,
            current_replicas=1,
            decision=_decision(),
            observation=Observation(0, 0),
        ),
    )
    assert _conds(same)["Ready"]["lastTransitionTime"] == to_rfc3339(NOW)
    flipped = build(same, Tick(now=NOW + 20, generation=1, problem=Problem("InvalidSpec", "x")))
    assert _conds(flipped)["Ready"]["lastTransitionTime"] == to_rfc3339(NOW + 20)


def test_identical_holds_are_recorded_once_and_history_is_capped() -> None:
    status: dict[str, object] = {}
    for i in range(5):
        status = build(
            status, Tick(now=NOW + i, generation=1, current_replicas=1, decision=_decision())
        )
    assert len(status["decisions"]) == 1  # type: ignore[arg-type]
    for i in range(30):
        status = build(
            status,
            Tick(
                now=NOW + i,
                generation=1,
                current_replicas=i,
                decision=_decision(Action.SCALE_UP, Reason.QUEUE_DEPTH, i + 1),
            ),
        )
    history = status["decisions"]
    assert len(history) == MAX_DECISIONS  # type: ignore[arg-type]
    assert history[-1]["toReplicas"] == 30  # type: ignore[index]


def test_fallback_and_paused_conditions() -> None:
    tick = Tick(
        now=NOW,
        generation=1,
        current_replicas=1,
        paused=True,
        decision=_decision(Action.SCALE_UP, Reason.FALLBACK, 4),
        metrics_error="down",
    )
    conds = _conds(build({}, tick))
    assert conds["Fallback"]["status"] == "True"
    assert conds["Paused"]["status"] == "True"


def test_same_decision_ignores_the_sample_and_its_messages_but_nothing_else() -> None:
    def tick(depth: int, age_s: float) -> Tick:
        message = f"depth {depth}, oldest {age_s:.1f}s: within the band"
        return Tick(
            now=NOW + age_s,
            generation=1,
            target="w",
            current_replicas=3,
            decision=Decision(3, Action.HOLD, Reason.WITHIN_BAND, frozenset(), message),
            observation=Observation(depth=depth, oldest_age_s=age_s),
        )

    first = build({}, tick(5, 1.0))
    later = build(first, tick(7, 9.5))
    assert (later["observed"], later["lastMessage"]) != (first["observed"], first["lastMessage"])
    assert _conds(later)["Active"]["message"] != _conds(first)["Active"]["message"]
    assert same_decision(later, first)
    idle = build(first, tick(0, 0.0))
    assert not same_decision(idle, first), "Active flips to False"
    for key, value in [("currentReplicas", 9), ("consecutiveFailures", 1), ("lastReason", "X")]:
        assert not same_decision({**first, key: value}, first), key
