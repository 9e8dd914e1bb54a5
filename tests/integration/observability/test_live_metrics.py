"""``promtool check metrics`` on the live ``/metrics`` of a real worker and a real operator.

The worker is the ``jobqueue worker`` console script on the Redis fixture; it runs
jobs that complete, one that fails once and is retried, and one that is
dead-lettered, so every labelled family has children. The operator is
``jobqueue-operator --standalone`` on the local control plane under its own
ServiceAccount, with one JobQueue it can read and one whose Redis is down, so the
per-JobQueue gauges and the error counters exist. Nothing is mocked.

Besides promtool, the output is held against ``docs/metrics.md`` (every exposed
family is catalogued, every catalogued family of that exporter is exposed) and
searched for the ids of the jobs that ran: a job id in a label value is an
unbounded series and fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from observability_helpers import (
    base_name,
    catalogue,
    check_metrics,
    family_names,
    samples,
    scrape,
)

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.stack import (
    LoopSpec,
    install_operator_identity,
    jobqueue_manifest,
    start_operator,
    worker_deployment,
)
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.producer import JobRequest, SyncProducer

BIN = Path(sys.executable).parent
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def _wait(pred: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{tail}")


def _sample(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples(exposition)
        if s.name == name and labels.items() <= s.labels.items()
    )


def _labels_with_job_ids(exposition: str, job_ids: set[str]) -> list[str]:
    """Every ``series{label=value}`` whose value is, or contains, a job id or looks like one."""
    bad = []
    for s in samples(exposition):
        for k, v in s.labels.items():
            if HEX_ID.match(v) or any(j in v for j in job_ids):
                bad.append(f"{s.name}{{{k}={v!r}}}")
    return bad


def _catalogue_mismatch(exposition: str, exporter: str, ignore_prefixes: tuple[str, ...]) -> str:
    entries = [e for e in catalogue() if e.exporter == exporter]
    known = {e.name for e in entries if not e.planned}
    exposed = {
        base_name(n, known) for n in family_names(exposition) if not n.startswith(ignore_prefixes)
    }
    uncatalogued = sorted(exposed - known)
    missing = sorted(n for n in known - exposed if not n.startswith(ignore_prefixes))
    if uncatalogued or missing:
        return (
            f"docs/metrics.md vs live {exporter} /metrics: "
            f"not catalogued {uncatalogued}; catalogued but not exposed {missing}"
        )
    return ""


# ---------------------------------------------------------------- the worker
@pytest.fixture
def worker_metrics(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, set[str]]]:
    """A real worker that ran completed, retried and dead-lettered jobs; (body, job ids)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JQW_")}
    env.update(
        JQW_REDIS_URL=redis_url,
        JQW_QUEUES="obs:high,obs:low",
        JQW_HTTP_PORT=str(port),
        JQW_HTTP_HOST="127.0.0.1",
        JQW_HEARTBEAT_INTERVAL_S="0.2",
        JQW_CONCURRENCY="4",
        JQW_HANDLERS="jobqueue_worker.examples",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "jobqueue"), "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    producer = SyncProducer(redis_url, default_queue="obs:high")
    try:
        _wait(
            lambda: "jobqueue_in_flight" in scrape(f"http://127.0.0.1:{port}/metrics"),
            30,
            "the worker's /metrics",
            log,
        )
        ids = producer.enqueue_many(
            [
                JobRequest(type="noop", queue="obs:high", priority="high"),
                JobRequest(type="noop", queue="obs:low", priority="low"),
                JobRequest(type="fail_n_times", payload={"n": 1}, queue="obs:high"),
                JobRequest(type="permanent_failure", queue="obs:low"),
            ]
        )
        queues = ["obs:high", "obs:low", "obs:high", "obs:low"]
        final = {JobStatus.COMPLETED, JobStatus.DEAD}

        def all_done() -> bool:
            return all(
                (rec := producer.status(i, q)) is not None and rec.status in final
                for i, q in zip(ids, queues, strict=True)
            )

        _wait(all_done, 30, "the four jobs to finish", log)
        # One more heartbeat so the queue gauges show the final depths.
        time.sleep(0.6)
        body = scrape(f"http://127.0.0.1:{port}/metrics")
        yield body, set(ids)
    finally:
        producer.close()
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(5)


@pytest.mark.redis
def test_worker_metrics_pass_promtool(worker_metrics: tuple[str, set[str]]) -> None:
    body, _ = worker_metrics
    # The run really produced the interesting series (else promtool checks little).
    for needle in (
        'outcome="retried"',
        'outcome="dead"',
        'outcome="completed"',
        "jobqueue_job_duration_seconds_bucket",
        "jobqueue_dead_letters_total{",
    ):
        assert needle in body, f"{needle} missing from the worker's /metrics"
    assert check_metrics(body) == []


@pytest.mark.redis
def test_worker_metrics_carry_no_job_id(worker_metrics: tuple[str, set[str]]) -> None:
    body, ids = worker_metrics
    assert _labels_with_job_ids(body, ids) == []


@pytest.mark.redis
def test_worker_metrics_match_the_catalogue(worker_metrics: tuple[str, set[str]]) -> None:
    body, _ = worker_metrics
    # jobqueue_redis_errors_total has no child until a Redis call fails; its
    # HELP/TYPE lines are still exposed, so the family is listed.
    assert _catalogue_mismatch(body, "worker", ()) == ""


# ---------------------------------------------------------------- the operator
@pytest.fixture
def operator_metrics(
    control_plane: ControlPlane,
    namespace: str,
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[tuple[str, set[str]]]:
    """A standalone operator with a JobQueue it scales and one whose Redis is down."""
    spec = LoopSpec(
        namespace=namespace,
        name="obs",
        queue="obs",
        max_replicas=4,
        polling_interval_s=1,
        scale_up_cooldown_s=0,
    )
    down = RedisServer(port=free_port())  # never started: a port nobody listens on
    broken = jobqueue_manifest(
        LoopSpec(namespace=namespace, name="broken", queue="broken", polling_interval_s=1), down
    )
    producer = SyncProducer(redis_url, default_queue="obs")
    ids = producer.enqueue_many([JobRequest(type="noop", queue="obs") for _ in range(150)])
    producer.close()
    manifests = [
        worker_deployment(spec, redis_url),
        jobqueue_manifest(spec, redis_server),
        worker_deployment(LoopSpec(namespace=namespace, name="broken"), redis_url),
        broken,
    ]
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    control_plane.kubectl("apply", "-f", str(path))
    kubeconfig = install_operator_identity(control_plane, [namespace], tmp_path)
    proc, port = start_operator(kubeconfig, [namespace], tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "operator.log"

    def ready() -> bool:
        body = scrape(url)
        return (
            f'jobqueue_operator_scale_actions_total{{direction="up",jobqueue="obs",namespace="{namespace}"}}'
            in body
            and f'jobqueue_operator_redis_errors_total{{jobqueue="broken",namespace="{namespace}"}}'
            in body
            and "jobqueue_operator_desired_replicas{" in body
            # A few polls of obs, so that some were due at a time (see the lateness test).
            and _sample(body, "jobqueue_operator_loop_duration_seconds_count", jobqueue="obs") >= 3
        )

    try:
        _wait(ready, 90, "the operator to scale obs and fail on broken", log)
        body = scrape(url)
        (tmp_path / "operator.prom").write_text(body)
        yield body, set(ids)
    finally:
        proc.stop()


@pytest.mark.k8s
@pytest.mark.redis
def test_operator_metrics_pass_promtool(operator_metrics: tuple[str, set[str]]) -> None:
    body, _ = operator_metrics
    assert check_metrics(body) == []


@pytest.mark.k8s
@pytest.mark.redis
def test_operator_metrics_carry_no_job_id(operator_metrics: tuple[str, set[str]]) -> None:
    body, ids = operator_metrics
    assert _labels_with_job_ids(body, ids) == []


@pytest.mark.k8s
@pytest.mark.redis
def test_the_operator_reports_how_late_its_polls_start(
    operator_metrics: tuple[str, set[str]],
) -> None:
    body, _ = operator_metrics
    name = "jobqueue_operator_poll_lateness_seconds"
    # Every poll but each loop's first was due at a time: obs alone ran three.
    observed = _sample(body, f"{name}_count")
    assert observed >= 2, body
    assert _sample(body, f"{name}_bucket", le="+Inf") == observed
    assert _sample(body, f"{name}_sum") >= 0.0


@pytest.mark.k8s
@pytest.mark.redis
def test_operator_metrics_match_the_catalogue(operator_metrics: tuple[str, set[str]]) -> None:
    body, _ = operator_metrics
    assert _catalogue_mismatch(body, "operator", ()) == ""


def test_job_id_scan_catches_an_id_in_a_label() -> None:
    """The scanner itself: a planted job id in a label value is reported."""
    body = (
        "# HELP x_total x\n# TYPE x_total counter\n"
        'x_total{queue="q",job="0123456789abcdef0123456789abcdef"} 1\n'
        'x_total{queue="q",note="run-abc-1"} 1\n'
    )
    assert _labels_with_job_ids(body, {"abc-1"}) == [
        "x_total{job='0123456789abcdef0123456789abcdef'}",
        "x_total{note='run-abc-1'}",
    ]


def test_promtool_complaints_are_reported() -> None:
    """check_metrics returns promtool's complaint for a counter without ``_total``."""
    body = "# HELP jobs_done Jobs.\n# TYPE jobs_done counter\njobs_done 1\n"
    problems = check_metrics(body)
    assert problems, "promtool accepted a counter without _total"
    assert any("_total" in p for p in problems), problems
