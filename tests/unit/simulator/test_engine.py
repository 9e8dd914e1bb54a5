"""The event loop on hand-computed scenarios: one row per mechanism, exact numbers."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from jobqueue_simulator.engine import (
    ClusterView,
    Distribution,
    ServiceModel,
    SimConfig,
    SimResult,
    Timer,
    simulate,
)


@dataclass
class Scripted:
    """A policy that sets the given replica counts at the given ticks (by tick time)."""

    plan: dict[float, int]
    period_s: float = 1.0
    label: str = "scripted"
    seen: list[ClusterView] = field(default_factory=list)

    def timers(self) -> Sequence[Timer]:
        return (Timer("script", self.period_s, self.period_s),)

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        self.seen.append(view)
        return self.plan.get(view.now)


def constant(mean_s: float) -> ServiceModel:
    return ServiceModel(Distribution.CONSTANT, mean_s)


def config(
    *,
    service: ServiceModel | None = None,
    concurrency: int = 1,
    startup_delay_s: float = 0.0,
    initial_replicas: int = 1,
    horizon_s: float = 100.0,
    grace_s: float = 0.0,
) -> SimConfig:
    return SimConfig(
        grace_s=grace_s,
        service=service or constant(1.0),
        concurrency=concurrency,
        startup_delay_s=startup_delay_s,
        initial_replicas=initial_replicas,
        horizon_s=horizon_s,
        sample_every_s=1.0,
    )


def run(arrivals: list[float], plan: dict[float, int], cfg: SimConfig, seed: int = 0) -> SimResult:
    return simulate(arrivals, Scripted(plan), cfg, random.Random(seed))


def test_one_pod_serves_fifo() -> None:
    result = run([0.0, 0.0, 0.0], {}, config(horizon_s=10))
    assert sorted(result.waits) == [0.0, 1.0, 2.0]
    assert result.completed == 3
    assert result.max_depth == 3
    assert result.replica_seconds == 10.0


def test_concurrency_runs_jobs_side_by_side() -> None:
    result = run([0.0] * 4, {}, config(concurrency=2, horizon_s=10))
    assert sorted(result.waits) == [0.0, 0.0, 1.0, 1.0]


def test_a_new_pod_works_only_after_its_startup_delay() -> None:
    # No pod at first; the policy asks for one at t=1, it is ready at t=1+5.
    result = run([0.0], {1.0: 1}, config(initial_replicas=0, startup_delay_s=5, horizon_s=20))
    assert result.waits == (6.0,)
    # The starting pod costs from its creation: 19 s of one replica.
    assert result.replica_seconds == 19.0


def test_replica_seconds_integrate_the_count() -> None:
    result = run([], {10.0: 3}, config(horizon_s=20))
    assert result.replica_seconds == 10 * 1 + 10 * 3
    assert [(e.t, e.from_replicas, e.to_replicas) for e in result.scale_events] == [(10.0, 1, 3)]


def test_scale_down_interrupts_a_busy_pod_and_the_job_runs_again() -> None:
    # Two ready pods each running a 10 s job; at t=2 one pod goes (both are busy).
    result = run([0.0, 0.0], {2.0: 1}, config(initial_replicas=2, service=constant(10.0)))
    assert result.interrupted == 1
    assert result.completed == 2
    # The interrupted job went back to the queue and restarted at t=10 on the other pod.
    assert sorted(result.waits) == [0.0, 10.0]


def test_not_ready_pods_are_removed_before_busy_ready_ones() -> None:
    cfg = config(initial_replicas=1, startup_delay_s=50, service=constant(10.0))
    result = run([0.0], {1.0: 3, 2.0: 1}, cfg)
    assert result.interrupted == 0
    assert result.completed == 1


def test_interrupted_jobs_keep_their_place_at_the_head() -> None:
    # One pod, concurrency 1: job 0 runs, jobs 1 and 2 wait. The pod goes at t=1 and a
    # fresh one is asked for at t=2: job 0 (the oldest) must run first again.
    cfg = config(initial_replicas=1, service=constant(5.0), horizon_s=100)
    result = run([0.0, 0.5, 0.6], {1.0: 0, 2.0: 1}, cfg)
    assert result.interrupted == 1
    waits = result.waits
    assert waits[0] == pytest.approx(2.0)  # restarted at t=2
    assert waits[1] == pytest.approx(7.0 - 0.5)
    assert waits[2] == pytest.approx(12.0 - 0.6)


def test_arrivals_after_the_horizon_are_not_counted() -> None:
    result = run([1.0, 50.0, 150.0], {}, config(horizon_s=100))
    assert result.arrived == 2
    assert result.completed == 2


def test_the_policy_sees_the_state_after_arrivals_at_the_same_instant() -> None:
    policy = Scripted({}, period_s=5.0)
    simulate([5.0] * 7, policy, config(initial_replicas=0, horizon_s=5), random.Random(0))
    assert policy.seen[0].depth == 7
    assert policy.seen[0].oldest_age_s == 0.0


def test_the_view_reports_age_busy_and_in_flight() -> None:
    policy = Scripted({}, period_s=4.0)
    cfg = config(initial_replicas=1, concurrency=2, service=constant(10.0), horizon_s=4)
    simulate([0.0, 0.0, 1.0], policy, cfg, random.Random(0))
    view = policy.seen[0]
    assert (view.depth, view.in_flight, view.busy_pods, view.ready_pods) == (1, 2, 1, 1)
    assert view.oldest_age_s == 3.0
    assert (view.arrived_total, view.completed_total) == (3, 0)


def test_end_state_counts_what_is_left() -> None:
    result = run([0.0] * 5, {}, config(service=constant(10.0), horizon_s=15))
    assert (result.completed, result.in_service_end, result.waiting_end) == (1, 1, 3)
    # Waits are for started jobs only: the finished one and the running one.
    assert sorted(result.waits) == [0.0, 10.0]


@pytest.mark.parametrize(
    ("distribution", "cv"),
    [(Distribution.EXPONENTIAL, 1.0), (Distribution.LOGNORMAL, 1.5), (Distribution.CONSTANT, 0.0)],
)
def test_service_models_have_the_requested_mean(distribution: Distribution, cv: float) -> None:
    model = ServiceModel(distribution, 2.0, cv)
    rng = random.Random(7)
    draws = [model.draw(rng) for _ in range(40_000)]
    assert all(d > 0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"concurrency": 0},
        {"startup_delay_s": -1.0},
        {"initial_replicas": -1},
        {"horizon_s": float("inf")},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message differs; the type is the contract
        config(**kwargs)  # type: ignore[arg-type]


def test_unsorted_arrivals_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        run([2.0, 1.0], {}, config())


def test_a_removed_pod_drains_its_jobs_within_the_grace() -> None:
    """Removal stops new work; a job shorter than the grace finishes, a longer one is lost."""
    short = run(
        [0.0, 0.0], {2.0: 1}, config(initial_replicas=2, service=constant(10.0), grace_s=30)
    )
    assert short.interrupted == 0
    assert sorted(short.waits) == [0.0, 0.0]
    # the draining pod costs until its job ends at t=10: 2 pods to t=2, 2 to t=10, 1 to 100
    assert short.replica_seconds == pytest.approx(2 * 10 + 90)
    long = run([0.0, 0.0], {2.0: 1}, config(initial_replicas=2, service=constant(50.0), grace_s=30))
    assert long.interrupted == 1
    assert long.completed == 2
    assert sorted(long.waits) == [0.0, 50.0]  # lost at t=32, restarted at t=50 on the other pod


def test_start_up_times_are_lognormal_and_deterministic_for_a_seed() -> None:
    cfg = dataclasses.replace(
        config(initial_replicas=0, startup_delay_s=20.0, horizon_s=600), startup_sigma=0.5
    )
    first = run([0.0] * 40, {1.0: 40}, cfg)
    again = run([0.0] * 40, {1.0: 40}, cfg)
    assert first == again
    assert len(set(first.waits)) > 5  # pods came up at different times


def test_actuation_latency_delays_the_write_and_the_policy_sees_what_it_wrote() -> None:
    cfg = dataclasses.replace(config(initial_replicas=1, horizon_s=10), actuation_s=2.5)
    policy = Scripted({1.0: 3})
    result = simulate([], policy, cfg, random.Random(0))
    # the event is the write; the two new pods exist (and cost) only from 3.5 s
    assert [(e.t, e.from_replicas, e.to_replicas) for e in result.scale_events] == [(1.0, 1, 3)]
    assert result.replica_seconds == pytest.approx(1 * 10 + 2 * (10 - 3.5))
    # /scale already says 3 on the next ticks, before the ReplicaSet has acted
    assert [v.replicas for v in policy.seen[:4]] == [1, 3, 3, 3]


def test_stale_figures_are_those_read_before_the_tick() -> None:
    """7 jobs arrive at t = 4.5; with 1 s staleness the tick at 5 still sees an empty queue."""
    cfg = dataclasses.replace(config(initial_replicas=0, horizon_s=6), staleness_s=1.0)
    policy = Scripted({})
    simulate([4.5] * 7, policy, cfg, random.Random(0))
    by_time = {v.now: v.depth for v in policy.seen}
    assert by_time[5.0] == 0
    assert by_time[6.0] == 7


@dataclass
class Draining(Scripted):
    """A scripted policy that also lists pods in the drain hash and writes deletion costs."""

    drains: dict[float, frozenset[str]] = field(default_factory=dict)
    costs: dict[float, dict[str, int]] = field(default_factory=dict)
    listed: frozenset[str] = frozenset()
    cost: dict[str, int] = field(default_factory=dict)

    def on_tick(self, timer: str, view: ClusterView) -> int | None:
        self.listed = self.drains.get(view.now, self.listed)
        self.cost = self.costs.get(view.now, self.cost)
        return super().on_tick(timer, view)

    def drain_requests(self) -> frozenset[str]:
        return self.listed

    def deletion_costs(self) -> dict[str, int]:
        return self.cost

    def capacity(self) -> int:
        return 0


def test_a_drained_pod_finishes_its_job_takes_no_new_one_and_fetches_again_when_withdrawn() -> None:
    cfg = config(initial_replicas=2, horizon_s=20, service=constant(4.0))
    policy = Draining(plan={}, drains={1.0: frozenset({"pod-0"}), 9.0: frozenset()})
    # pod-0 takes the job at 0 (longest idle); jobs at 2 and 3 find only pod-1 free
    result = simulate([0.0, 2.0, 3.0, 10.0], policy, cfg, random.Random(0))
    assert result.interrupted == 0
    # job 0 finishes on pod-0 (4 s); job 2 waits for pod-1 (free at 6); the job at 10
    # finds pod-0 fetching again and starts at once
    assert sorted(result.waits) == [0.0, 0.0, 0.0, 3.0]
    seen = {v.now: v for v in policy.seen}
    assert [p.jobs for p in seen[5.0].pods] == [0, 1]  # pod-0 idle, drained: no new job


def test_the_replicaset_removes_the_lowest_deletion_cost_among_ready_pods() -> None:
    cfg = config(initial_replicas=3, horizon_s=5)
    policy = Draining(plan={2.0: 2}, costs={2.0: {"pod-1": -1000, "pod-0": 5}})
    simulate([], policy, cfg, random.Random(0))
    assert [p.name for p in policy.seen[-1].pods] == ["pod-0", "pod-2"]
