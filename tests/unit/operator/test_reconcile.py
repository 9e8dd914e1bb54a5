"""The loop's glue with a fake Kubernetes API and a fake stats read (no services).

What only the glue can get wrong: a failed /scale write is not remembered as a
scale (so it is retried, not skipped by a cooldown), a failed status write does
not end the loop, the same absolute count is never written twice, a restart
resumes the cooldowns from status, and Warning Events are posted on change only.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue_operator import reconcile
from jobqueue_operator.kube import KubeError, ObjectRef
from jobqueue_operator.observe import MetricsUnavailableError, RedisPools
from jobqueue_operator.policy import Observation
from jobqueue_operator.reconcile import Context, Loop
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import to_rfc3339


class FakeKube:
    def __init__(self, replicas: int | None = 1) -> None:
        self.replicas = replicas
        self.writes: list[int] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, bool]] = []
        self.fail_scale = False
        self.fail_status = False
        self.lookups = {"conflict": 0, "secret": 0}

    async def get_replicas(self, namespace: str, name: str) -> int | None:
        return self.replicas

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        if self.fail_scale:
            raise KubeError("could not scale Deployment w: HTTP 500")
        self.writes.append(replicas)
        self.replicas = replicas

    async def find_conflict(self, namespace: str, jobqueue: str, target: str, created: str) -> None:
        self.lookups["conflict"] += 1

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        self.lookups["secret"] += 1
        return "pw"

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if self.fail_status:
            raise KubeError("could not patch the status: HTTP 500")
        self.statuses.append(status)

    async def post_event(self, ref: ObjectRef, reason: str, message: str, *, warning: bool) -> None:
        self.events.append((reason, warning))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


BODY: dict[str, Any] = {
    "metadata": {"name": "q", "namespace": "ns", "generation": 1, "uid": "u"},
    "spec": {
        "scaleTargetRef": {"name": "w"},
        "redis": {"host": "r"},
        "queues": ["q"],
        "pollingIntervalSeconds": 2,
        "scaleUp": {"queueDepth": 10, "cooldownSeconds": 60},
        "scaleDown": {"queueDepth": 2, "cooldownSeconds": 60},
    },
}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"obs": Observation(depth=0, oldest_age_s=0.0), "error": None}

    async def fake_read(
        client: object, queues: list[str], *, display: str, timeout_s: float
    ) -> tuple[Observation, dict[str, Any]]:
        if state["error"]:
            raise MetricsUnavailableError(state["error"])
        return state["obs"], {}

    monkeypatch.setattr(reconcile, "read", fake_read)
    return state


def make_loop(kube: FakeKube, clock: Clock, status: dict[str, Any] | None = None) -> Loop:
    ctx = Context(kube=kube, pools=RedisPools(), settings=OperatorSettings(), clock=clock)  # type: ignore[arg-type]
    return Loop.from_status(ctx, "ns", "q", status or {})


async def test_failed_scale_is_retried_next_tick_not_cooled_down(world: dict[str, Any]) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock)
    world["obs"] = Observation(depth=15, oldest_age_s=0.0)
    kube.fail_scale = True
    assert await loop.tick(BODY) == 2.0
    assert loop.last_up is None
    assert kube.statuses[-1]["conditions"][0]["reason"] == "ScaleFailed"
    kube.fail_scale = False
    clock.now += 2
    await loop.tick(BODY)
    assert kube.writes == [2]
    assert loop.last_up == clock.now


async def test_hold_never_writes_and_a_scale_writes_the_absolute_count_once(
    world: dict[str, Any],
) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    loop = make_loop(kube, clock)
    world["obs"] = Observation(depth=5, oldest_age_s=0.0)  # in the band
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    assert kube.writes == []
    world["obs"] = Observation(depth=40, oldest_age_s=0.0)  # 4x: +3
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    assert kube.writes == [6], "one write, then the cooldown holds"
    assert [e for e in kube.events if e[0] == "ScaledUp"] == [("ScaledUp", False)]


async def test_status_write_failure_keeps_the_loop_going(world: dict[str, Any]) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock)
    kube.fail_status = True
    await loop.tick(BODY)
    kube.fail_status = False
    await loop.tick(BODY)
    assert len(kube.statuses) == 1


async def test_restart_resumes_cooldown_from_status(world: dict[str, Any]) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    status = {"lastScaleUpTime": to_rfc3339(clock.now - 30), "consecutiveFailures": 2}
    loop = make_loop(kube, clock, status)
    assert loop.failures == 2
    world["obs"] = Observation(depth=15, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.writes == [], "still 30 s of cooldown left"
    clock.now += 31
    await loop.tick(BODY)
    assert kube.writes == [3]


async def test_warnings_on_change_only_and_recovery_event(world: dict[str, Any]) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    loop = make_loop(kube, clock)
    world["error"] = "Redis at redis://r:6379/0: ConnectionError"
    for _ in range(4):
        await loop.tick(BODY)
    assert kube.events == [("MetricsUnavailable", True)]
    assert kube.writes == []
    assert kube.statuses[-1]["consecutiveFailures"] == 4
    world["error"] = None
    world["obs"] = Observation(depth=5, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.events[-1] == ("Recovered", False)
    assert kube.statuses[-1]["consecutiveFailures"] == 0


async def test_invalid_spec_is_a_condition_and_the_interval_still_applies(
    world: dict[str, Any],
) -> None:
    kube, clock = FakeKube(), Clock()
    loop = make_loop(kube, clock)
    body = {**BODY, "spec": {**BODY["spec"], "queues": [], "pollingIntervalSeconds": 7}}
    assert await loop.tick(body) == 7.0
    ready = kube.statuses[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "queues" in ready["message"]
    assert kube.events == [("InvalidSpec", True)]


async def test_missing_target(world: dict[str, Any]) -> None:
    kube, clock = FakeKube(replicas=None), Clock()
    await make_loop(kube, clock).tick(BODY)
    assert kube.statuses[-1]["conditions"][0]["reason"] == "TargetNotFound"


async def test_conflict_and_secret_are_reread_every_30s_not_every_tick(
    world: dict[str, Any],
) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock)
    spec = {**BODY["spec"], "redis": {"host": "r", "passwordSecretRef": {"name": "s"}}}
    body = {**BODY, "spec": spec}
    for _ in range(10):  # 20 s of ticks
        await loop.tick(body)
        clock.now += 2
    assert kube.lookups == {"conflict": 1, "secret": 1}
    clock.now += 15
    await loop.tick(body)
    assert kube.lookups == {"conflict": 2, "secret": 2}
    other = {**body, "spec": {**spec, "scaleTargetRef": {"name": "w2"}}}
    await loop.tick(other)
    assert kube.lookups["conflict"] == 3, "a new target is checked at once"
