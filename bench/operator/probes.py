"""Counters read before and after a window: the operator's, Redis's and the apiserver's.

Each source is read the way an operator's user could read it, so the numbers can
be reproduced without this harness:

* the operator's own ``/metrics`` (``jobqueue_loop_duration_seconds_count`` counts
  polls, one per JobQueue per tick);
* Redis ``INFO stats`` / ``INFO commandstats`` (``total_reads_processed`` counts
  read events, i.e. request round trips, since Redis 6; commandstats count commands);
* kube-apiserver's ``/metrics``: ``apiserver_flowcontrol_dispatched_requests_total``
  per flow schema singles out the operator by identity (it is the only
  ServiceAccount client; the benchmark and the controller manager are admins and
  fall into the ``exempt`` schema), and ``apiserver_request_total`` gives the
  per-verb/resource breakdown for the resources only the operator touches.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis.asyncio as aioredis
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from jobqueue_devkit.controlplane import ControlPlane

POLL_COUNT = "jobqueue_loop_duration_seconds_count"
POLL_SUM = "jobqueue_loop_duration_seconds_sum"
ROUND_TRIPS = "jobqueue_redis_round_trips_total"
# Only the operator reads or writes these (the controller manager runs no HPA
# controller and knows no JobQueues; Events are posted only by the operator here).
OPERATOR_RESOURCES = frozenset(
    {
        ("deployments", "scale"),
        ("horizontalpodautoscalers", ""),
        ("jobqueues", ""),
        ("jobqueues", "status"),
        ("events", ""),
        ("secrets", ""),
    }
)
SA_FLOW_SCHEMA = "service-accounts"


def _unprefixed(name: str) -> str:
    """``jobqueue_operator_x`` → ``jobqueue_x``: the series were renamed in commit 9ddf289
    (``jobqueue_operator_*``); both spellings are read so older builds still measure."""
    if name.startswith("jobqueue_operator_"):
        return "jobqueue_" + name.removeprefix("jobqueue_operator_")
    return name


@dataclass(frozen=True)
class OperatorCounters:
    """Sums over every JobQueue of the operator's own series."""

    polls: float
    loop_seconds: float
    round_trips: float | None  # None: the operator has no such metric
    api_errors: dict[str, float] = field(default_factory=dict)  # by ``call``
    redis_errors: float = 0.0
    #: The status writes off the poll's path; ``None`` for a tree without them.
    status_writes: StatusWrites | None = None
    #: How late the polls started; ``None`` for a tree without the histogram.
    lateness: PollLateness | None = None


@dataclass(frozen=True)
class StatusWrites:
    """The operator's status-write series: pending now, and the delay and coalescing so far."""

    pending: float
    written: float
    delay_seconds: float
    superseded: float


@dataclass(frozen=True)
class PollLateness:
    """The operator's poll-lateness histogram: cumulative counts by upper bound (s)."""

    count: float
    seconds: float
    buckets: dict[float, float]


async def operator_counters(port: int) -> OperatorCounters:
    """Scrape the operator's ``/metrics`` once."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            return str(resp.read().decode())

    text = await asyncio.to_thread(fetch)
    polls = seconds = redis_errors = 0.0
    trips: float | None = None
    api_errors: defaultdict[str, float] = defaultdict(float)
    families = list(text_string_to_metric_families(text))
    for family in families:
        for sample in family.samples:
            name = _unprefixed(sample.name)
            if name == POLL_COUNT:
                polls += sample.value
            elif name == POLL_SUM:
                seconds += sample.value
            elif name == ROUND_TRIPS:
                trips = (trips or 0.0) + sample.value
            elif name == "jobqueue_api_errors_total":
                api_errors[sample.labels.get("call", "")] += sample.value
            elif name == "jobqueue_redis_errors_total":
                redis_errors += sample.value
    return OperatorCounters(
        polls,
        seconds,
        trips,
        dict(api_errors),
        redis_errors,
        status_writes_from(families),
        lateness_from(families),
    )


def lateness_from(families: Iterable[Metric]) -> PollLateness | None:
    """The poll-lateness histogram of one scrape; ``None`` if the operator has none."""
    count = total = None
    buckets: dict[float, float] = {}
    for family in families:
        for sample in family.samples:
            name = _unprefixed(sample.name)
            if name == "jobqueue_poll_lateness_seconds_count":
                count = sample.value
            elif name == "jobqueue_poll_lateness_seconds_sum":
                total = sample.value
            elif name == "jobqueue_poll_lateness_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
    if count is None or total is None:
        return None
    return PollLateness(count, total, buckets)


def status_writes_from(families: Iterable[Metric]) -> StatusWrites | None:
    """The status-write series of one scrape; ``None`` if the operator has none of them."""
    found: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            field_name = _STATUS_WRITE_SERIES.get(_unprefixed(sample.name))
            if field_name is not None:
                found[field_name] = sample.value
    if len(found) < len(_STATUS_WRITE_SERIES):
        return None
    return StatusWrites(**found)


_STATUS_WRITE_SERIES = {
    "jobqueue_status_writes_pending": "pending",
    "jobqueue_status_write_delay_seconds_count": "written",
    "jobqueue_status_write_delay_seconds_sum": "delay_seconds",
    "jobqueue_status_writes_superseded_total": "superseded",
}


@dataclass(frozen=True)
class RedisCounters:
    """Server-wide Redis counters, with the commands of our own INFO calls excluded."""

    reads: int
    commands: int
    by_command: dict[str, int]


# Each snapshot is two INFO calls on one connection; see :func:`redis_delta`.
OWN_READS_PER_SNAPSHOT = 2


async def redis_counters(rclient: aioredis.Redis) -> RedisCounters:
    """``INFO stats`` then ``INFO commandstats`` on the benchmark's own connection."""
    stats = await rclient.info("stats")
    cmdstats = await rclient.info("commandstats")
    by_command = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in cmdstats.items()
        if isinstance(value, dict) and name != "cmdstat_info"
    }
    return RedisCounters(
        reads=int(stats["total_reads_processed"]),
        commands=sum(by_command.values()),
        by_command=by_command,
    )


def redis_delta(before: RedisCounters, after: RedisCounters) -> tuple[int, int, dict[str, int]]:
    """(round trips, commands, commands by name) of everyone but us between two snapshots.

    ``total_reads_processed`` in ``before`` already includes ``before``'s first INFO;
    the reads in between that are ours are ``before``'s second INFO and ``after``'s
    first, so two are subtracted. INFO itself is left out of the command counts.
    """
    reads = after.reads - before.reads - OWN_READS_PER_SNAPSHOT
    by_command = {
        k: v - before.by_command.get(k, 0)
        for k, v in after.by_command.items()
        if v - before.by_command.get(k, 0)
    }
    return reads, after.commands - before.commands, by_command


@dataclass(frozen=True)
class ApiCounters:
    """kube-apiserver request counters."""

    by_flow_schema: dict[str, float]
    operator_resources: dict[str, float]  # "VERB resource[/subresource]" -> count
    total: float
    # "VERB resource[/subresource]" -> seconds the apiserver spent on those requests
    operator_seconds: dict[str, float] = field(default_factory=dict)
    rejected_sa: float = 0.0  # APF rejections (429) of ServiceAccount requests


async def api_counters(plane: ControlPlane) -> ApiCounters:
    """Scrape kube-apiserver ``/metrics`` as admin (an exempt, non-resource request)."""
    text = await asyncio.to_thread(plane.kubectl, "get", "--raw", "/metrics", timeout_s=60.0)
    flows: defaultdict[str, float] = defaultdict(float)
    ours: defaultdict[str, float] = defaultdict(float)
    seconds: defaultdict[str, float] = defaultdict(float)
    total = rejected = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            res, sub = s.labels.get("resource", ""), s.labels.get("subresource", "")
            key = f"{s.labels.get('verb', '')} {res}{'/' + sub if sub else ''}"
            if s.name == "apiserver_flowcontrol_dispatched_requests_total":
                flows[s.labels.get("flow_schema", "")] += s.value
            elif s.name == "apiserver_flowcontrol_rejected_requests_total":
                if s.labels.get("flow_schema") == SA_FLOW_SCHEMA:
                    rejected += s.value
            elif s.name == "apiserver_request_total":
                total += s.value
                if (res, sub) in OPERATOR_RESOURCES:
                    ours[key] += s.value
            elif (
                s.name == "apiserver_request_duration_seconds_sum"
                and (res, sub) in OPERATOR_RESOURCES
            ):
                seconds[key] += s.value
    return ApiCounters(dict(flows), dict(ours), total, dict(seconds), rejected)


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in sorted(after.items()) if v - before.get(k, 0.0)}


def api_delta(before: ApiCounters, after: ApiCounters) -> tuple[float, dict[str, float]]:
    """(requests by the operator's identity, per-verb/resource requests) between snapshots."""
    sa = after.by_flow_schema.get(SA_FLOW_SCHEMA, 0.0) - before.by_flow_schema.get(
        SA_FLOW_SCHEMA, 0.0
    )
    return sa, _diff(after.operator_resources, before.operator_resources)


def api_latency(before: ApiCounters, after: ApiCounters) -> dict[str, float]:
    """Mean apiserver-side seconds per request, per verb/resource, between snapshots."""
    counts = _diff(after.operator_resources, before.operator_resources)
    secs = _diff(after.operator_seconds, before.operator_seconds)
    return {k: secs.get(k, 0.0) / n for k, n in counts.items() if n}


@dataclass
class ProcessSampler:
    """CPU time and RSS of one process, sampled every ``period_s`` while running.

    CPU comes from the kernel's cumulative user+system time (exact, not sampled);
    RSS is sampled for the window's peak, and ``VmHWM`` gives the lifetime peak.
    """

    pid: int
    period_s: float = 0.5
    rss_peak: int = 0
    samples: list[int] = field(default_factory=list)
    #: Seconds since the first sample, one per entry of ``samples``.
    sample_times: list[float] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        t = psutil.Process(self.pid).cpu_times()
        return float(t.user + t.system)

    def run_delay_seconds(self) -> float | None:
        """Seconds the process's threads spent runnable but waiting for a CPU, so far.

        The second field of ``/proc/<pid>/task/*/schedstat``: on a shared 2-core
        machine it tells "needed more CPU than it got" apart from "was waiting on
        the apiserver or Redis", which the CPU time alone cannot.
        """
        total = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None
        return total / 1e9

    def lifetime_peak_rss(self) -> int:
        """``VmHWM`` from ``/proc``: the highest RSS since the process started."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    async def sample_for(self, seconds: float) -> None:
        """Sample RSS until ``seconds`` have passed (the window's wall-clock length)."""
        proc = psutil.Process(self.pid)
        start = time.monotonic()
        deadline = start + seconds
        while (left := deadline - time.monotonic()) > 0:
            rss = int(proc.memory_info().rss)
            self.samples.append(rss)
            self.sample_times.append(time.monotonic() - start)
            self.rss_peak = max(self.rss_peak, rss)
            await asyncio.sleep(min(self.period_s, left))
