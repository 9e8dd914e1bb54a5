"""The discrete-event core: a queue, a Deployment's pods, and one scaling policy.

Pure on purpose: the clock is the simulation clock, randomness comes only from
the ``random.Random`` passed in, and nothing here does I/O. That is what makes a
run reproducible for a seed and lets tests drive it with hypothesis.

What is modelled, and why this way:

* **Arrivals** come from a trace (sorted arrival times). Jobs are served FIFO by
  enqueue time, like the broker's ready ZSET scored by ready time.
* **Service times** are drawn for every job *before* the run, in arrival order.
  Every policy compared with the same seed therefore sees exactly the same jobs;
  only the decisions differ.
* **Pods** have ``concurrency`` slots each (the worker's ``JQW_CONCURRENCY``) and
  take work once started (start-up time: ``replicaset.py``). Starting pods cost
  replica-seconds like ready ones.
* **Which slot gets the next job**: idle worker slots block on Redis, and Redis
  serves the client that has blocked longest; so free slots form a FIFO by the
  time they became free.
* **Scale-down drains**: a removed pod stops counting and takes no new job, but
  finishes its jobs within ``grace_s`` (the pod's termination grace period) and
  costs replica-seconds until then. A job still running when the grace ends is
  *interrupted* and goes back to the head of the queue (its work lost).
* **Drain requests** (a policy that chooses pods, as the operator does): a pod
  the policy lists fetches nothing from the moment of the tick (the worker's
  step script reads the drain hash atomically) but runs, counts in the replicas
  and costs until it is removed; withdrawn, its free slots fetch again.
* **Which pods go**: the ReplicaSet's ranking, blind to jobs (``replicaset.py``).
* **Decisions** happen only on the policy's own timers; a write takes effect
  ``actuation_s`` later, and the queue figures a policy reads are ``staleness_s``
  old. Arrivals, completions, pods becoming ready and grace periods ending are
  exact events in between.

Events at the same instant run in a fixed order, kept by ``eventqueue.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import deque
from collections.abc import Sequence

from jobqueue_simulator import eventqueue as ev
from jobqueue_simulator.replicaset import Pod, pods_to_remove, startup_delay
from jobqueue_simulator.world import (
    ClusterView,
    Distribution,
    PodState,
    Policy,
    Sample,
    ScaleEvent,
    ServiceModel,
    SimConfig,
    SimResult,
    Timer,
    chooses_pods,
    pod_name,
)

__all__ = [
    "ClusterView",
    "Distribution",
    "Policy",
    "Sample",
    "ScaleEvent",
    "ServiceModel",
    "SimConfig",
    "SimResult",
    "Timer",
    "simulate",
]


def simulate(
    arrivals: Sequence[float],
    policy: Policy,
    config: SimConfig,
    rng: random.Random,
) -> SimResult:
    """Run one policy over one trace until ``config.horizon_s``.

    ``arrivals`` must be sorted. Arrivals after the horizon are ignored.
    """
    return _Run(arrivals, policy, config, rng).run()


class _Run:
    """One simulation; the state lives here only for the duration of :func:`simulate`."""

    def __init__(
        self,
        arrivals: Sequence[float],
        policy: Policy,
        config: SimConfig,
        rng: random.Random,
    ) -> None:
        if any(b < a for a, b in itertools.pairwise(arrivals)):
            raise ValueError("arrival times must be sorted")
        if arrivals and arrivals[0] < 0:
            raise ValueError("arrival times must be >= 0")
        self.arrivals = [t for t in arrivals if t <= config.horizon_s]
        self.policy = policy
        self.config = config
        self.rng = rng
        # Drawn up front, in arrival order, so every policy gets the same jobs; the
        # start-up times come from their own stream, so a policy that starts more pods
        # does not shift the draws of the pod choice.
        self.service = [config.service.draw(rng) for _ in self.arrivals]
        self.startup_rng = random.Random(rng.random())
        self.now = 0.0
        self.agenda = ev.EventQueue()
        self.queue: deque[int] = deque()  # job ids; ids follow enqueue time
        self.pods: dict[int, Pod] = {}
        self.draining: dict[int, Pod] = {}  # removed, finishing their jobs
        self.chooser = chooses_pods(policy)
        self.drained: set[int] = set()  # listed in the drain hash: fetch nothing
        self.costs: dict[str, int] = {}
        self.next_pid = 0
        self.free: deque[tuple[int, int]] = deque()  # (pod, slot), longest-idle first
        self.attempt = [0] * len(self.arrivals)
        self.started_at = [-1.0] * len(self.arrivals)
        self.finished = [False] * len(self.arrivals)
        self.location: dict[int, tuple[int, int]] = {}  # running job -> (pod, slot)
        self.next_arrival = 0
        self.completed = 0
        self.completed_service = 0.0
        self.in_flight = 0
        self.interrupted = 0
        self.max_depth = 0
        self.replica_seconds = 0.0
        self.last_t = 0.0
        self.events: list[ScaleEvent] = []
        self.samples: list[Sample] = []
        self.timers = list(policy.timers())
        # A written count waiting for the ReplicaSet (actuation latency) and, per timer,
        # the figures read ``staleness_s`` before its tick.
        self.pending: tuple[int, str] | None = None
        self.snapshots: dict[int, ClusterView] = {}

    # ------------------------------------------------------------ the loop
    def run(self) -> SimResult:
        cfg = self.config
        for _ in range(cfg.initial_replicas):
            self._add_pod(ready_at=0.0)
        if self.arrivals:
            self.agenda.push(self.arrivals[0], ev.ARRIVE)
        for index, timer in enumerate(self.timers):
            if timer.period_s <= 0:
                raise ValueError(f"timer {timer.name}: period must be positive")
            self._schedule(index, timer.first_at_s)
        self.agenda.push(0.0, ev.SAMPLE)
        while (event := self.agenda.pop_until(cfg.horizon_s)) is not None:
            t, kind, a, b = event
            self._advance(t)
            if kind == ev.ARRIVE:
                self._on_arrivals()
            elif kind == ev.DONE:
                self._on_done(a, b)
            elif kind == ev.READY:
                self._on_ready(a)
            elif kind == ev.TIMER:
                self._on_timer(a)
            elif kind == ev.KILL:
                self._on_kill(a)
            elif kind == ev.APPLY:
                self._on_apply(a, b)
            elif kind == ev.SNAP:
                self.snapshots[a] = self._view()
            else:
                self._on_sample()
        self._advance(cfg.horizon_s)
        return self._result()

    def _advance(self, t: float) -> None:
        # Draining pods still run (and cost) until their last job ends or the grace does.
        self.replica_seconds += (len(self.pods) + len(self.draining)) * (t - self.last_t)
        self.last_t = t
        self.now = t

    # ------------------------------------------------------------ events
    def _on_arrivals(self) -> None:
        t = self.now
        while self.next_arrival < len(self.arrivals) and self.arrivals[self.next_arrival] == t:
            self.queue.append(self.next_arrival)
            self.next_arrival += 1
        self.max_depth = max(self.max_depth, len(self.queue))
        if self.next_arrival < len(self.arrivals):
            self.agenda.push(self.arrivals[self.next_arrival], ev.ARRIVE)
        self._dispatch()

    def _on_done(self, job: int, attempt: int) -> None:
        if self.attempt[job] != attempt or job not in self.location:
            return  # this attempt was interrupted by a scale-down
        pod_id, slot = self.location[job]
        pod = self.pods.get(pod_id) or self.draining[pod_id]
        del pod.running[slot]
        del self.location[job]
        self.finished[job] = True
        self.in_flight -= 1
        self.completed += 1
        self.completed_service += self.service[job]
        if pod_id in self.pods:
            if pod_id not in self.drained:
                self.free.append((pod_id, slot))
        elif not pod.running:
            del self.draining[pod_id]  # drained: the pod exits before its grace ends
        self._dispatch()

    def _on_ready(self, pod_id: int) -> None:
        if pod_id not in self.pods or pod_id in self.drained:
            return  # removed before it became ready, or drained: fetches nothing
        self.free.extend((pod_id, slot) for slot in range(self.config.concurrency))
        self._dispatch()

    def _schedule(self, index: int, at: float) -> None:
        timer = self.timers[index]
        if self.config.staleness_s > 0:
            self.agenda.push(max(0.0, at - self.config.staleness_s), ev.SNAP, index)
        self.agenda.push(at, ev.TIMER, index, after=timer.order)

    def _on_timer(self, index: int) -> None:
        timer = self.timers[index]
        view = self._view()
        stale = self.snapshots.pop(index, None)
        if stale is not None:
            # old queue figures, but the clock and the replica count of now
            view = dataclasses.replace(stale, now=view.now, replicas=view.replicas)
        before = self._capacity(view.replicas)
        desired = self.policy.on_tick(timer.name, view)
        # drain requests and deletion costs are written before /scale is
        self._apply_drains()
        written = view.replicas
        if desired is not None and desired != view.replicas:
            written = max(0, desired)
            if self.config.actuation_s > 0:
                self.pending = (written, timer.name)
                self.agenda.push(self.now + self.config.actuation_s, ev.APPLY, written, index)
            else:
                self._scale(written)
        after = self._capacity(written)
        if after != before:
            self.events.append(ScaleEvent(self.now, before, after, timer.name))
        self._schedule(index, self.now + timer.period_s)

    def _capacity(self, written: int) -> int:
        """What the policy counts on: the count written, or its own figure if it drains."""
        return written if self.chooser is None else self.chooser.capacity()

    def _apply_drains(self) -> None:
        """Drained pods stop fetching; withdrawn ones fetch again with their free slots."""
        if self.chooser is None:
            return
        self.costs = self.chooser.deletion_costs()
        listed = self.chooser.drain_requests()
        wanted = {pid for pid in self.pods if pod_name(pid) in listed}
        if wanted - self.drained:
            self.free = deque(s for s in self.free if s[0] not in wanted)
        for pid in self.drained - wanted:
            pod = self.pods[pid]
            if pod.ready_at <= self.now:
                busy = pod.running.keys()
                self.free.extend(
                    (pid, slot) for slot in range(self.config.concurrency) if slot not in busy
                )
        self.drained = wanted
        self._dispatch()

    def _on_apply(self, desired: int, index: int) -> None:
        """The ReplicaSet acts on the last written count (a newer write replaces it)."""
        if self.pending is None or self.pending[0] != desired:
            return
        self.pending = None
        if desired != len(self.pods):
            self._scale(desired)

    def _on_kill(self, pod_id: int) -> None:
        """The grace period ended: whatever still runs on the pod is lost and re-queued."""
        pod = self.draining.pop(pod_id, None)
        if pod is None or not pod.running:
            return
        back = list(pod.running.values())
        for job in back:
            del self.location[job]
        self.in_flight -= len(back)
        self.interrupted += len(back)
        self._requeue(back)
        self._dispatch()

    def _on_sample(self) -> None:
        ready = sum(1 for p in self.pods.values() if p.ready_at <= self.now)
        busy = sum(1 for p in self.pods.values() if p.running)
        self.samples.append(Sample(self.now, len(self.queue), len(self.pods), ready, busy))
        self.agenda.push(self.now + self.config.sample_every_s, ev.SAMPLE)

    # ------------------------------------------------------------ mechanics
    def _dispatch(self) -> None:
        while self.queue and self.free:
            pod_id, slot = self.free.popleft()
            pod = self.pods.get(pod_id)
            if pod is None or pod_id in self.drained:
                continue  # the slot's pod was removed, or fetches nothing
            job = self.queue.popleft()
            self.attempt[job] += 1
            self.started_at[job] = self.now
            pod.running[slot] = job
            self.location[job] = (pod_id, slot)
            self.in_flight += 1
            self.agenda.push(self.now + self.service[job], ev.DONE, job, self.attempt[job])

    def _add_pod(self, ready_at: float) -> None:
        pod = Pod(self.next_pid, self.now, ready_at)
        self.pods[pod.pid] = pod
        self.next_pid += 1
        if ready_at <= self.now:
            self.free.extend((pod.pid, slot) for slot in range(self.config.concurrency))
        else:
            self.agenda.push(ready_at, ev.READY, pod.pid)

    def _scale(self, desired: int) -> None:
        current = len(self.pods)
        if desired > current:
            for _ in range(desired - current):
                self._add_pod(ready_at=self.now + startup_delay(self.config, self.startup_rng))
        else:
            self._remove(current - desired)
        self._dispatch()

    def _remove(self, count: int) -> None:
        """Remove ``count`` pods, chosen by the ReplicaSet; they finish their jobs within
        the grace period (jobs are lost only when it ends)."""
        for pod in pods_to_remove(self.pods.values(), count, self.now, self.costs, self.rng):
            del self.pods[pod.pid]
            self.drained.discard(pod.pid)
            if pod.running:
                self.draining[pod.pid] = pod
                self.agenda.push(self.now + self.config.grace_s, ev.KILL, pod.pid)

    def _requeue(self, jobs: list[int]) -> None:
        """Put interrupted jobs back at the head, keeping the queue sorted by enqueue order."""
        merged = sorted(jobs)
        while self.queue and self.queue[0] < merged[-1]:
            merged.append(self.queue.popleft())
        merged.sort()
        self.queue.extendleft(reversed(merged))
        self.max_depth = max(self.max_depth, len(self.queue))

    def _view(self) -> ClusterView:
        now = self.now
        oldest = now - self.arrivals[self.queue[0]] if self.queue else 0.0
        return ClusterView(
            now=now,
            replicas=self.pending[0] if self.pending is not None else len(self.pods),
            ready_pods=sum(1 for p in self.pods.values() if p.ready_at <= now),
            busy_pods=sum(1 for p in self.pods.values() if p.running),
            depth=len(self.queue),
            oldest_age_s=oldest,
            in_flight=self.in_flight,
            arrived_total=self.next_arrival,
            completed_total=self.completed,
            completed_service_s=self.completed_service,
            concurrency=self.config.concurrency,
            pods=tuple(
                PodState(pod_name(p.pid), p.ready_at <= now, len(p.running), sum(runs), max(runs))
                for p in self.pods.values()
                for runs in [[now - self.started_at[j] for j in p.running.values()] or [0.0]]
            ),
        )

    def _result(self) -> SimResult:
        waits = tuple(
            self.started_at[j] - self.arrivals[j]
            for j in range(self.next_arrival)
            if self.finished[j] or j in self.location
        )
        return SimResult(
            policy=self.policy.label,
            horizon_s=self.config.horizon_s,
            arrived=self.next_arrival,
            completed=self.completed,
            completed_service_s=self.completed_service,
            waiting_end=len(self.queue),
            in_service_end=self.in_flight,
            interrupted=self.interrupted,
            replica_seconds=self.replica_seconds,
            max_depth=self.max_depth,
            waits=waits,
            scale_events=tuple(self.events),
            samples=tuple(self.samples),
        )
