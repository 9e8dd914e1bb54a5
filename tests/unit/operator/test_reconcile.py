"""The loop's glue with fakes of its two ports, Kubernetes and the queues (no services).

What only the glue can get wrong: a failed /scale write is not remembered as a
scale (so it is retried, not skipped by a cooldown), a failed status write does
not end the loop, the same absolute count is never written twice, a restart
resumes the cooldowns from status, and Warning Events are posted on change only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from jobqueue_operator.claims import HPA_REFRESH_S, Claim
from jobqueue_operator.policy import Observation, WorkerLoad
from jobqueue_operator.ports import (
    DrainError,
    KubeError,
    NoPodSelectorError,
    ObjectRef,
    PollRequest,
    QueuePoll,
    TargetKindError,
)
from jobqueue_operator.reconcile import Context, Loop
from jobqueue_operator.scaledown import SETTLE_S
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status import to_rfc3339
from jobqueue_operator.status_writes import QueuedStatusWrites
from jobqueue_operator.targets import TargetKey, TargetRef
from jobqueue_operator.victims import DRAIN_CONFIRM_S, PodView


class FakeKube:
    def __init__(self, replicas: int | None = 1) -> None:
        self.replicas = replicas
        self.writes: list[int] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, bool]] = []
        self.fail_scale = False
        self.fail_status = False
        self.lookups = {"secret": 0}
        self.pods: list[PodView] = []
        self.costs: dict[str, int] = {}
        self.cost_writes: list[tuple[str, int | None]] = []
        self.fail_pods = False
        #: The target's /scale has no status.selector (a CRD without labelSelectorPath).
        self.no_selector = False
        #: The target's kind cannot be scaled here (what discovery would say).
        self.kind_error: str | None = None
        self.hpas: list[tuple[str, TargetRef]] = []
        self.fail_hpa = False
        #: What the namespace's Deployment watch says (None: it does not know).
        self.watched: int | None = None

    async def list_target_pods(self, namespace: str, name: str) -> list[PodView]:
        if self.fail_pods:
            raise KubeError("could not list the Pods of Deployment w: HTTP 403 Forbidden")
        if self.no_selector:
            raise NoPodSelectorError("WorkerPool w reports no Pod selector: plain scaling")
        return list(self.pods)

    async def get_worker_requests(
        self, namespace: str, name: str
    ) -> tuple[float | None, float | None]:
        self.lookups["requests"] = self.lookups.get("requests", 0) + 1
        return 0.5, 100 * 2**20

    async def set_deletion_cost(self, namespace: str, pod: str, cost: int | None) -> None:
        self.cost_writes.append((pod, cost))
        if cost is None:
            self.costs.pop(pod, None)
        else:
            self.costs[pod] = cost

    def watched_replicas(self, namespace: str, name: str) -> int | None:
        return self.watched

    async def get_replicas(self, namespace: str, name: str) -> int | None:
        self.lookups["scale"] = self.lookups.get("scale", 0) + 1
        if self.kind_error is not None:
            raise TargetKindError(self.kind_error)
        return self.replicas

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        if self.fail_scale:
            raise KubeError("could not scale Deployment w: HTTP 500")
        self.writes.append(replicas)
        self.replicas = replicas
        self.scaled_with_costs = dict(self.costs)

    async def hpa_targets(self, namespace: str) -> list[tuple[str, TargetRef]]:
        self.lookups["hpa"] = self.lookups.get("hpa", 0) + 1
        if self.fail_hpa:
            raise KubeError("could not list the HorizontalPodAutoscalers in ns: HTTP 403")
        return list(self.hpas)

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


class FakeQueues:
    """The queue side of one JobQueue: a poll returns ``obs`` (or fails with ``error``);
    drain requests and withdrawals are recorded instead of written."""

    def __init__(self) -> None:
        self.obs = Observation(depth=0, oldest_age_s=0.0)
        self.error: str | None = None
        self.polled = False
        self.requested: list[tuple[str, ...]] = []
        self.withdrawn: list[tuple[str, ...]] = []
        self.fail_drain = False
        self.closed = False

    async def poll(self, request: PollRequest) -> QueuePoll:
        self.polled = True
        if self.error:
            return QueuePoll(None, {}, None, self.error)
        return QueuePoll(self.obs, {}, None)

    async def request_drain(self, pods: Sequence[str], now: float, ttl_s: float) -> bool:
        if not self.polled:
            return False
        if self.fail_drain:
            raise DrainError("Redis at r: NOPERM this user has no permissions")
        assert ttl_s > SETTLE_S
        self.requested.append(tuple(pods))
        return True

    async def withdraw_drain(self, pods: Sequence[str]) -> bool:
        if not self.polled:
            return False
        self.withdrawn.append(tuple(pods))
        return True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def world() -> FakeQueues:
    return FakeQueues()


def make_loop(
    kube: FakeKube,
    clock: Clock,
    status: dict[str, Any] | None = None,
    claims: dict[tuple[str, TargetKey], list[Claim]] | None = None,
    queues: FakeQueues | None = None,
) -> Loop:
    fake = queues or FakeQueues()
    ctx = Context(
        kube=kube, queues_for=lambda owner: fake, settings=OperatorSettings(), clock=clock
    )
    index = claims or {}
    return Loop(ctx, "ns", "q", status or {}, lambda ns, t: index.get((ns, t), []))


async def test_failed_scale_is_retried_next_tick_not_cooled_down(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=15, oldest_age_s=0.0)
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
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=5, oldest_age_s=0.0)  # in the band
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    assert kube.writes == []
    world.obs = Observation(depth=40, oldest_age_s=0.0)  # 4x: +3
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    assert kube.writes == [6], "one write, then the cooldown holds"
    assert [e for e in kube.events if e[0] == "ScaledUp"] == [("ScaledUp", False)]


async def test_status_write_failure_keeps_the_loop_going(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock, queues=world)
    kube.fail_status = True
    await loop.tick(BODY)
    kube.fail_status = False
    await loop.tick(BODY)
    assert len(kube.statuses) == 1


def queued_loop(
    kube: FakeKube, clock: Clock, queues: FakeQueues, gate: asyncio.Event
) -> tuple[Loop, QueuedStatusWrites]:
    """A loop as the operator runs it: statuses queued, each PATCH waiting for ``gate``."""

    async def slow_patch(namespace: str, name: str, status: dict[str, Any]) -> None:
        await gate.wait()
        await kube.patch_status(namespace, name, status)

    ctx = Context(
        kube=kube,
        queues_for=lambda owner: queues,
        settings=OperatorSettings(),
        clock=clock,
        status_writes=QueuedStatusWrites(slow_patch, in_flight=1),
    )
    assert isinstance(ctx.writes, QueuedStatusWrites)
    return Loop(ctx, "ns", "q", {}, lambda ns, t: []), ctx.writes


async def test_a_slow_status_write_does_not_hold_up_the_polls(world: FakeQueues) -> None:
    kube, clock, gate = FakeKube(replicas=1), Clock(), asyncio.Event()
    loop, writes = queued_loop(kube, clock, world, gate)
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    await asyncio.wait_for(loop.tick(BODY), 1.0)  # the first status: its PATCH waits
    world.obs = Observation(depth=15, oldest_age_s=0.0)  # a scale-up: a new decision
    clock.now += 2
    await asyncio.wait_for(loop.tick(BODY), 1.0)
    assert kube.writes == [2], "the scale itself is not queued"
    assert kube.statuses == []
    gate.set()
    assert await writes.flush(1.0)
    assert [s["desiredReplicas"] for s in kube.statuses] == [1, 2]
    await writes.close()


async def test_a_queued_write_that_failed_is_made_again_by_the_next_poll(
    world: FakeQueues,
) -> None:
    kube, clock, gate = FakeKube(replicas=1), Clock(), asyncio.Event()
    gate.set()
    loop, writes = queued_loop(kube, clock, world, gate)
    kube.fail_status = True
    await loop.tick(BODY)
    assert await writes.flush(1.0)
    kube.fail_status = False
    clock.now += 2  # well inside the 30 s refresh, same decision
    await loop.tick(BODY)
    assert await writes.flush(1.0)
    assert len(kube.statuses) == 1
    loop.close()
    await writes.close()


class RecordedWrites:
    """Records whether each status was submitted as urgent; fails the next when told."""

    def __init__(self) -> None:
        self.urgent: list[bool] = []
        self.fail_next = False

    async def submit(
        self, key: tuple[str, str], status: dict[str, Any], *, urgent: bool, on_failure: Any
    ) -> None:
        self.urgent.append(urgent)
        if self.fail_next:
            self.fail_next = False
            on_failure(KubeError("could not patch the status: HTTP 500"))

    def forget(self, key: tuple[str, str], *, keep_decision: bool = False) -> None:
        return None


async def test_a_status_written_again_after_a_failure_does_not_jump_the_line(
    world: FakeQueues,
) -> None:
    """Under API errors every JobQueue writes again; only new decisions are urgent."""
    kube, clock, writes = FakeKube(replicas=1), Clock(), RecordedWrites()
    ctx = Context(
        kube=kube,
        queues_for=lambda owner: world,
        settings=OperatorSettings(),
        clock=clock,
        status_writes=writes,
    )
    loop = Loop(ctx, "ns", "q", {}, lambda ns, t: [])
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    writes.fail_next = True
    await loop.tick(BODY)  # the first status: urgent, and it fails
    clock.now += 2
    await loop.tick(BODY)  # same decision, written again at once, in the routine line
    clock.now += 2
    await loop.tick(BODY)  # written, same decision, refresh not due: nothing
    world.obs = Observation(depth=15, oldest_age_s=0.0)  # a scale-up: a new decision
    clock.now += 2
    await loop.tick(BODY)
    assert writes.urgent == [True, False, True]


async def test_restart_resumes_cooldown_from_status(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    status = {"lastScaleUpTime": to_rfc3339(clock.now - 30), "consecutiveFailures": 2}
    loop = make_loop(kube, clock, status, queues=world)
    assert loop.gather.failures == 2
    world.obs = Observation(depth=15, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.writes == [], "still 30 s of cooldown left"
    clock.now += 31
    await loop.tick(BODY)
    assert kube.writes == [3]


async def test_a_stamp_from_a_clock_an_hour_ahead_holds_one_cooldown_not_an_hour(
    world: FakeQueues,
) -> None:
    """Another node wrote lastScaleUpTime with its clock an hour ahead of ours."""
    kube, clock = FakeKube(replicas=2), Clock()
    loop = make_loop(kube, clock, {"lastScaleUpTime": to_rfc3339(clock.now + 3600)}, queues=world)
    world.obs = Observation(depth=15, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.writes == []
    assert "cooldown for 60s" in kube.statuses[-1]["lastMessage"]
    clock.now += 61
    await loop.tick(BODY)
    assert kube.writes == [3]


async def test_warnings_on_change_only_and_recovery_event(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    loop = make_loop(kube, clock, queues=world)
    world.error = "Redis at redis://r:6379/0: ConnectionError"
    for _ in range(4):
        await loop.tick(BODY)
    assert kube.events == [("MetricsUnavailable", True)]
    assert kube.writes == []
    assert kube.statuses[-1]["consecutiveFailures"] == 4
    world.error = None
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.events[-1] == ("Recovered", False)
    assert kube.statuses[-1]["consecutiveFailures"] == 0


async def test_invalid_spec_is_a_condition_and_the_interval_still_applies(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(), Clock()
    loop = make_loop(kube, clock, queues=world)
    body = {**BODY, "spec": {**BODY["spec"], "queues": [], "pollingIntervalSeconds": 7}}
    assert await loop.tick(body) == 7.0
    ready = kube.statuses[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "queues" in ready["message"]
    assert kube.events == [("InvalidSpec", True)]


async def test_missing_target(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=None), Clock()
    await make_loop(kube, clock, queues=world).tick(BODY)
    assert kube.statuses[-1]["conditions"][0]["reason"] == "TargetNotFound"


async def test_an_hpa_on_the_target_is_refused_and_the_list_is_shared_per_namespace(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    kube.hpas = [
        ("cpu", TargetRef("w")),
        ("other", TargetRef("elsewhere")),
        ("same-name", TargetRef("w", "StatefulSet")),  # another target: no conflict
    ]
    ctx = Context(
        kube=kube, queues_for=lambda owner: world, settings=OperatorSettings(), clock=clock
    )
    loops = [Loop(ctx, "ns", f"q{i}") for i in range(3)]
    world.obs = Observation(depth=50, oldest_age_s=0.0)
    for _ in range(4):  # 8 s of ticks of three JobQueues
        for loop in loops:
            await loop.tick(MINE)
        clock.now += 2
    assert kube.lookups["hpa"] == 1, "one LIST per namespace per 10 s, shared"
    ready = kube.statuses[-1]["conditions"][0]
    assert ready["reason"] == "TargetConflict"
    assert "HorizontalPodAutoscaler cpu already scales Deployment w" in ready["message"]
    assert kube.writes == []
    kube.hpas = []  # the HPA is deleted: the next list frees the target
    clock.now += HPA_REFRESH_S
    await loops[0].tick(MINE)
    assert kube.lookups["hpa"] == 2
    assert kube.writes, "scaled once the HPA was gone"


async def test_an_unreadable_hpa_list_is_a_condition_not_a_stall(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    kube.fail_hpa = True
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=50, oldest_age_s=0.0)
    await loop.tick(MINE)
    ready = kube.statuses[-1]["conditions"][0]
    assert ready["reason"] == "KubernetesAPIError"
    assert "HorizontalPodAutoscalers" in ready["message"]
    assert kube.writes == []
    kube.fail_hpa = False
    clock.now += 2
    await loop.tick(MINE)
    assert kube.writes, "a failed list is not cached: the next tick reads again and acts"


async def test_secret_is_reread_every_30s_not_every_tick(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock, queues=world)
    spec = {**BODY["spec"], "redis": {"host": "r", "passwordSecretRef": {"name": "s"}}}
    body = {**BODY, "spec": spec}
    for _ in range(10):  # 20 s of ticks
        await loop.tick(body)
        clock.now += 2
    assert kube.lookups["secret"] == 1
    clock.now += 15
    await loop.tick(body)
    assert kube.lookups["secret"] == 2
    moved = {**spec, "redis": {"host": "r", "passwordSecretRef": {"name": "s2"}}}
    await loop.tick({**body, "spec": moved})
    assert kube.lookups["secret"] == 3, "a new Secret reference is read at once"


MINE = {**BODY, "metadata": {**BODY["metadata"], "creationTimestamp": "2026-05-01T00:00:00Z"}}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ([Claim("2026-05-01T00:00:00Z", "q")], None),  # only its own claim
        ([Claim("2026-05-01T00:00:00Z", "q"), Claim("2026-06-01T00:00:00Z", "young")], None),
        ([Claim("2026-04-01T00:00:00Z", "old")], "JobQueue old already scales Deployment w"),
        ([Claim("2026-05-01T00:00:00Z", "a")], "JobQueue a already scales Deployment w"),
    ],
)
async def test_a_claimed_target_is_refused_and_never_scaled(
    world: FakeQueues, claims: list[Claim], reason: str | None
) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(
        kube,
        clock,
        queues=world,
        claims={
            ("ns", ("apps", "Deployment", "w")): claims,
            ("ns", ("apps", "Deployment", "other")): [Claim("", "x")],
            ("ns", ("apps", "StatefulSet", "w")): [Claim("", "sts")],  # same name, other kind
        },
    )
    world.obs = Observation(depth=50, oldest_age_s=0.0)
    await loop.tick(MINE)
    ready = kube.statuses[-1]["conditions"][0]
    if reason is None:
        assert ready["reason"] == "Reconciled"
        assert kube.writes, "an unclaimed target is scaled"
    else:
        assert ready["reason"] == "TargetConflict"
        assert reason in ready["message"]
        assert kube.writes == []
        assert ("TargetConflict", True) in kube.events


DOWN = Observation(
    depth=0,
    oldest_age_s=0.0,
    in_flight=1,
    busy_workers=1,
    workers=3,
    worker_loads=(
        WorkerLoad("w-a", "idle", 0),
        WorkerLoad("w-b", "busy", 1, busy_s=12.0),
        WorkerLoad("w-c", "idle", 0),
    ),
)
DOWN_BODY: dict[str, Any] = {
    **BODY,
    "spec": {**BODY["spec"], "scaleDown": {"queueDepth": 2, "cooldownSeconds": 0, "step": 2}},
}


async def after_scale_down(world: FakeQueues) -> tuple[FakeKube, Clock, Loop]:
    """Three Ready workers, one busy (DOWN): a tick drains the idle two, the next removes them."""
    kube, clock = FakeKube(replicas=3), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
    loop = make_loop(kube, clock, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    assert kube.writes == [], "drain first: /scale stays while the chosen Pods drain"
    assert kube.statuses[-1]["drainingPods"] == ["w-a", "w-c"]
    assert kube.statuses[-1]["desiredReplicas"] == 1
    assert world.requested == [("w-a", "w-c")]
    clock.now += DRAIN_CONFIRM_S
    await loop.tick(DOWN_BODY)
    return kube, clock, loop


async def test_scale_down_annotates_before_scaling_then_settles_and_cleans_up(
    world: FakeQueues,
) -> None:
    kube, clock, loop = await after_scale_down(world)
    assert kube.writes == [1]
    # the costs were on the Pods when /scale was written
    assert kube.scaled_with_costs == {"w-a": -1000, "w-c": -1000, "w-b": 1012}
    chosen = kube.statuses[-1]["podSelection"]
    assert chosen["chosenPods"] == ["w-a", "w-c"]
    assert chosen["protectedPods"] == ["w-b"]
    assert chosen["settled"] is False
    # the chosen workers were told to stop fetching before /scale was lowered
    assert world.requested == [("w-a", "w-c")] * 2
    assert chosen["drainRequested"] == ["w-a", "w-c"]
    assert kube.statuses[-1]["drainingPods"] == [], "removed, no longer draining"
    # the ReplicaSet has not acted yet: nothing settles, annotations stay
    clock.now += 2
    world.obs = dataclasses.replace(DOWN, worker_loads=DOWN.worker_loads[1:2])
    await loop.tick(DOWN_BODY)
    assert "podSelection" not in kube.statuses[-1]
    assert kube.costs
    # it acted: the removed pods are recorded and the survivor's annotation is removed
    kube.pods = [PodView("w-a", True, terminating=True), PodView("w-b", True)]
    clock.now += 2
    await loop.tick(DOWN_BODY)
    settled = kube.statuses[-1]["podSelection"]
    assert settled["settled"] is True
    assert settled["removedPods"] == ["w-a", "w-c"]
    assert "exactly the chosen" in settled["message"]
    assert kube.costs == {"w-a": -1000, "w-c": -1000}, "only live pods are cleaned"
    assert ("w-b", None) in kube.cost_writes
    assert loop.scale_down.selection is None
    assert world.withdrawn == [("w-a", "w-c")], "drain entries go once settled"


async def test_unexpected_removal_is_reported(world: FakeQueues) -> None:
    kube, clock, loop = await after_scale_down(world)
    kube.pods = [PodView("w-a", True)]
    clock.now += 2
    await loop.tick(DOWN_BODY)
    message = kube.statuses[-1]["podSelection"]["message"]
    assert "w-b" in message
    assert "not chosen" in message


async def test_unsettled_selection_times_out_and_still_cleans_up(world: FakeQueues) -> None:
    kube, clock, loop = await after_scale_down(world)
    world.obs = Observation(depth=5, oldest_age_s=0.0)  # band: hold
    clock.now += SETTLE_S + 1
    await loop.tick(DOWN_BODY)
    assert kube.costs == {}
    assert kube.statuses[-1]["podSelection"]["removedPods"] == []


async def test_restart_cleans_up_a_selection_left_in_status(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    kube.pods = [PodView("w-b", True)]
    kube.costs = {"w-b": 1012}
    status = {
        "podSelection": {
            "time": to_rfc3339(clock.now - 5),
            "fromReplicas": 3,
            "toReplicas": 1,
            "chosenPods": ["w-a", "w-c"],
            "protectedPods": ["w-b"],
            "drainRequested": ["w-a", "w-c"],
            "settled": False,
        }
    }
    loop = make_loop(kube, clock, status, queues=world)
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    await loop.tick(DOWN_BODY)
    assert kube.costs == {}
    assert kube.statuses[-1]["podSelection"]["removedPods"] == ["w-a", "w-c"]
    # and the drain the previous operator requested is taken off again
    assert world.withdrawn == [("w-a", "w-c")]


async def test_drain_off_or_failing_still_scales_down(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
    world.obs = DOWN
    off = {**DOWN_BODY, "spec": {**DOWN_BODY["spec"]}}
    off["spec"]["scaleDown"] = {**off["spec"]["scaleDown"], "drainChosenPods": False}
    await make_loop(kube, clock, queues=world).tick(off)
    assert kube.writes == [1]
    assert world.requested == []
    assert kube.statuses[-1]["podSelection"]["drainRequested"] == []

    kube2 = FakeKube(replicas=3)
    kube2.pods = list(kube.pods)
    world.fail_drain = True
    await make_loop(kube2, clock, queues=world).tick(DOWN_BODY)
    assert kube2.writes == [1], "a read-only Redis user does not stop the scale-down"
    selection = kube2.statuses[-1]["podSelection"]
    assert selection["drainRequested"] == []
    assert "drain request failed" in selection["message"]
    assert "NOPERM" in selection["message"]


async def test_a_scale_up_before_settling_withdraws_the_drain_at_once(
    world: FakeQueues,
) -> None:
    kube, clock, loop = await after_scale_down(world)
    assert world.requested == [("w-a", "w-c")] * 2
    # the ReplicaSet has not removed them yet, and a burst arrives
    clock.now += 2
    world.obs = Observation(depth=500, oldest_age_s=0.0, workers=3)
    await loop.tick(DOWN_BODY)
    assert kube.writes[-1] > 1, "scaled up"
    assert world.withdrawn == [("w-a", "w-c")], "they fetch again at once"


async def test_pods_unreadable_still_scales_down_and_says_why(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    kube.fail_pods = True
    loop = make_loop(kube, clock, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    assert kube.writes == [1]
    assert "403" in kube.statuses[-1]["podSelection"]["message"]
    assert loop.scale_down.selection is None


async def test_no_pod_selector_scales_down_plainly_and_says_so(world: FakeQueues) -> None:
    """Drain first needs the Pods; a target whose /scale names no selector scales blind."""
    kube, clock = FakeKube(replicas=3), Clock()
    kube.no_selector = True
    loop = make_loop(kube, clock, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    assert kube.writes == [1]
    selection = kube.statuses[-1]["podSelection"]
    assert "no Pod selector" in selection["message"]
    assert selection["chosenPods"] == []
    assert world.requested == [], "nothing is drained when the Pods cannot be found"
    assert loop.scale_down.selection is None


async def test_an_unscalable_kind_is_a_condition_and_an_event_not_a_crash(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    kube.kind_error = "spec.scaleTargetRef.kind: Report (example.com/v1) has no /scale subresource"
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=50, oldest_age_s=0.0)
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    ready = kube.statuses[-1]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTarget")
    assert ready["message"].startswith("spec.scaleTargetRef.kind:")
    assert kube.events.count(("InvalidTarget", True)) == 1, "one Warning, not one per tick"
    assert kube.writes == []
    kube.kind_error = None  # the CRD got its scale subresource
    await loop.tick(BODY)
    assert kube.writes, "picked up on the next tick"
    assert ("Recovered", False) in kube.events


async def test_status_and_events_name_the_target_by_kind(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=50, oldest_age_s=0.0)
    spec = {**BODY["spec"], "scaleTargetRef": {"kind": "StatefulSet", "name": "w"}}
    await loop.tick({**BODY, "spec": spec})
    assert kube.statuses[-1]["target"] == "StatefulSet/w"
    assert kube.writes


async def test_rates_from_counter_deltas_and_a_restart_waits_one_tick(
    world: FakeQueues,
) -> None:
    from jobqueue_operator.policy import Counters

    kube, clock = FakeKube(replicas=2), Clock()
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=5, oldest_age_s=0.0, counters=Counters(100, 50, 100_000))
    await loop.tick(BODY)
    observed = kube.statuses[-1]["observed"]
    assert "arrivalPerSecond" not in observed
    assert observed["meanServiceSeconds"] == 2.0
    clock.now += 40  # past the status refresh: only the sample moved
    world.obs = Observation(depth=5, oldest_age_s=0.0, counters=Counters(300, 60, 130_000))
    await loop.tick(BODY)
    observed = kube.statuses[-1]["observed"]
    assert observed["arrivalPerSecond"] == 5.0
    assert observed["meanServiceSeconds"] == 3.0


async def test_memory_trigger_reads_the_requests_every_30s_and_scales_up(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    loop = make_loop(kube, clock, queues=world)
    body = {
        **BODY,
        "spec": {**BODY["spec"], "scaleUp": {**BODY["spec"]["scaleUp"], "memoryPercent": 80}},
    }
    hot = tuple(WorkerLoad(f"w-{i}", "idle", 0, rss_bytes=120 * 2**20) for i in range(2))
    world.obs = Observation(depth=5, oldest_age_s=0.0, worker_loads=hot)
    await loop.tick(body)
    assert kube.writes == [3], "2 pods at 120% of an 80% target: ceil(2 x 1.5) = 3"
    assert kube.statuses[-1]["lastReason"] == "MemoryHigh"
    for _ in range(5):
        clock.now += 2
        await loop.tick(body)
    assert kube.lookups["requests"] == 1
    await loop.tick(BODY)  # no resource trigger: the template is not read
    clock.now += 31
    await loop.tick(BODY)
    assert kube.lookups["requests"] == 1


async def test_a_moving_sample_is_written_every_30s_and_a_new_decision_at_once(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=1), Clock()
    loop = make_loop(kube, clock, queues=world)
    for i in range(10):  # 20 s in the band: the depth and the oldest age move every tick
        world.obs = Observation(depth=5 + i % 3, oldest_age_s=2.0 * i)
        await loop.tick(BODY)
        clock.now += 2
    assert len(kube.statuses) == 1, [s["observed"] for s in kube.statuses]
    assert kube.statuses[0]["observed"]["depth"] == 5
    clock.now += 11  # 31 s after the first write
    await loop.tick(BODY)
    assert len(kube.statuses) == 2, "the sample is refreshed after 30 s"
    assert kube.statuses[-1]["observed"]["oldestAgeSeconds"] == 18.0
    world.obs = Observation(depth=0, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert len(kube.statuses) == 3, "the queue going idle flips Active: written at once"
    assert kube.statuses[-1]["observed"]["depth"] == 0
    world.obs = Observation(depth=40, oldest_age_s=1.0)
    clock.now += 1
    await loop.tick(BODY)
    assert len(kube.writes) == 1, "depth 40 is past the scale-up threshold"
    assert len(kube.statuses) == 4, "a scale is written at once"
    kube.fail_status = True
    clock.now += 31
    await loop.tick(BODY)
    kube.fail_status = False
    clock.now += 2
    await loop.tick(BODY)
    assert len(kube.statuses) == 5, "a failed write is retried on the next tick"


async def test_replicas_from_the_watch_cost_no_request_until_the_loop_acts(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    kube.watched = 2
    loop = make_loop(kube, clock, queues=world)
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    for _ in range(3):
        await loop.tick(BODY)
        clock.now += 2
    assert "scale" not in kube.lookups, "holding needs no /scale read"
    assert kube.statuses[-1]["currentReplicas"] == 2
    # Someone scaled to 5 and the watch has not delivered it: the loop decides
    # again from /scale before it writes, and writes from 5, not from 2.
    kube.replicas = 5
    world.obs = Observation(depth=40, oldest_age_s=0.0)
    await loop.tick(BODY)
    assert kube.lookups["scale"] == 1
    assert len(kube.writes) == 1, kube.writes
    assert kube.writes[0] > 5, kube.writes
    assert kube.statuses[-1]["decisions"][-1]["fromReplicas"] == 5
    # Without the watch (not listed yet, failing), every tick reads /scale.
    kube.watched = None
    world.obs = Observation(depth=5, oldest_age_s=0.0)
    clock.now += 120
    await loop.tick(BODY)
    assert kube.lookups["scale"] == 2


#: Two workers of concurrency 10, one job each: one Pod's slots suffice for both jobs.
TWO_BUSY = Observation(
    depth=0,
    oldest_age_s=0.0,
    in_flight=2,
    busy_workers=2,
    workers=2,
    pod_concurrency=10,
    worker_loads=(
        WorkerLoad("w-a", "busy", 1, busy_s=5.0, longest_s=5.0),
        WorkerLoad("w-b", "busy", 1, busy_s=50.0, longest_s=50.0),
    ),
)


async def test_a_busy_drained_pod_stays_until_a_heartbeat_shows_it_idle(
    world: FakeQueues,
) -> None:
    kube, clock = FakeKube(replicas=2), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True)]
    loop = make_loop(kube, clock, queues=world)
    world.obs = TWO_BUSY
    await loop.tick(DOWN_BODY)
    # the job that has run the least is on w-a: it drains, the long one stays put
    assert kube.statuses[-1]["drainingPods"] == ["w-a"]
    assert world.requested == [("w-a",)]
    for _ in range(3):  # its job still runs: it stays, whatever the time
        clock.now += DRAIN_CONFIRM_S
        await loop.tick(DOWN_BODY)
        assert kube.writes == []
        assert world.requested[-1] == ("w-a",), "the drain is written again (it has a TTL)"
    # the policy decided on the Pods that fetch: no second Pod is drained meanwhile
    assert loop.scale_down.draining.keys() == {"w-a"}
    clock.now += 2
    idle_a = (WorkerLoad("w-a", "idle", 0), TWO_BUSY.worker_loads[1])
    world.obs = dataclasses.replace(TWO_BUSY, in_flight=1, busy_workers=1, worker_loads=idle_a)
    await loop.tick(DOWN_BODY)
    assert kube.writes == [1]
    assert kube.scaled_with_costs == {"w-a": -1000, "w-b": 1050}
    assert kube.statuses[-1]["podSelection"]["chosenPods"] == ["w-a"]
    assert kube.statuses[-1]["drainingPods"] == []


async def test_a_surge_takes_drained_pods_back_before_raising_scale(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
    loop = make_loop(kube, clock, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    assert loop.scale_down.draining.keys() == {"w-a", "w-c"}
    clock.now += 2
    world.obs = dataclasses.replace(DOWN, depth=500)
    await loop.tick(DOWN_BODY)
    assert sorted(p for batch in world.withdrawn for p in batch) == ["w-a", "w-c"]
    assert loop.scale_down.draining == {}
    assert max(kube.writes, default=0) > 3, "the rest of the surge raises /scale"
    up = kube.statuses[-1]["decisions"][-1]
    assert (up["action"], up["fromReplicas"]) == ("ScaleUp", 1), "from the Pods that fetched"
    assert kube.statuses[-1]["drainingPods"] == []


async def test_a_restart_keeps_the_drains_and_confirms_them_again(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
    loop = make_loop(kube, clock, {"drainingPods": ["w-a", "w-c"]}, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    assert kube.writes == [], "a heartbeat after this operator's start must show them idle"
    assert world.requested == [("w-a", "w-c")]
    clock.now += DRAIN_CONFIRM_S
    await loop.tick(DOWN_BODY)
    assert kube.writes == [1]


async def test_pausing_or_missing_metrics_never_remove_drained_pods(world: FakeQueues) -> None:
    kube, clock = FakeKube(replicas=3), Clock()
    kube.pods = [PodView("w-a", True), PodView("w-b", True), PodView("w-c", True)]
    loop = make_loop(kube, clock, queues=world)
    world.obs = DOWN
    await loop.tick(DOWN_BODY)
    # Redis unreadable: no heartbeat to go by, so nothing is removed and nothing withdrawn
    world.error = "Redis at r: ConnectionError"
    clock.now += DRAIN_CONFIRM_S
    await loop.tick(DOWN_BODY)
    assert kube.writes == []
    assert loop.scale_down.draining.keys() == {"w-a", "w-c"}
    # paused: the count is left alone and the drained Pods fetch again
    world.error = None
    clock.now += 2
    await loop.tick({**DOWN_BODY, "spec": {**DOWN_BODY["spec"], "paused": True}})
    assert kube.writes == []
    assert sorted(p for batch in world.withdrawn for p in batch) == ["w-a", "w-c"]
    assert kube.statuses[-1]["drainingPods"] == []
