"""``--json`` of every read command, validated against the schemas printed in docs/cli.md.

The schemas are read from the document itself, so the documentation and the
output cannot drift apart. Real subprocesses of the installed script, on the
real Redis fixture, with a real worker so the arrays are not empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cli_harness import BIN, Run

from jobqueue_worker import examples
from jobqueue_worker.producer import JobRequest, Producer
from jobqueue_worker.runtime import Worker
from jobqueue_worker.settings import load

pytestmark = pytest.mark.redis

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
_BLOCK = re.compile(r"<!-- schema: (?P<name>[a-z-]+) -->\s*```json\n(?P<body>.*?)\n```", re.S)


def schemas() -> dict[str, dict[str, Any]]:
    found = {m["name"]: json.loads(m["body"]) for m in _BLOCK.finditer(DOC.read_text())}
    assert set(found) == {"stats", "job", "dlq-list", "health"}, sorted(found)
    return found


def check(name: str, proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode in (0, 1, 2), proc.stderr
    data = json.loads(proc.stdout)
    jsonschema.validate(data, schemas()[name], format_checker=jsonschema.FormatChecker())
    return data


def test_every_documented_schema_is_a_valid_schema() -> None:
    for name, schema in schemas().items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"].endswith("2020-12/schema"), name


def test_a_schema_rejects_what_the_document_says_is_wrong() -> None:
    """The validation can fail: a record with a stray field or a wrong status does not pass."""
    job = schemas()["job"]
    good = dict.fromkeys(job["required"]) | {
        "id": "j", "queue": "q", "status": "queued", "priority": 5, "attempt": 1, "deliveries": 0,
    }  # fmt: skip
    jsonschema.validate(good, job)
    for bad in ({**good, "status": "sleeping"}, {**good, "extra": 1}, {**good, "priority": 11}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, job)


async def test_stats_json_with_workers_limits_and_timings(jobqueue: Run, redis_url: str) -> None:
    """A real worker runs noop jobs and stays up, so workers and timings are not empty."""
    async with Producer(redis_url) as p:
        await p.enqueue_many([JobRequest(type="noop") for _ in range(5)])
        await p.enqueue_many([JobRequest(type="noop", queue="parked", priority=3)] * 4)
    settings = load(redis_url=redis_url, http_port=0, heartbeat_interval_s=0.2)
    worker = Worker(settings, examples.registry)
    task = asyncio.create_task(worker.run())
    env = {"JQW_HANDLERS": "jobqueue_worker.examples", "RATE_LIMIT_NOOP": "3/minute"}
    try:
        for _ in range(200):
            if await worker.broker.exec_stats(["default"]):
                break
            await asyncio.sleep(0.1)
        args = ("stats", "--json", "-q", "default,parked", "--redis-url", redis_url)
        proc = await asyncio.to_thread(jobqueue, *args, env=env)
    finally:
        worker.request_stop()
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    data = check("stats", proc)
    default, parked = data["queues"]
    assert (parked["queue"], parked["waiting"], parked["waiting_by_priority"]["3"]) == (
        "parked",
        4,
        4,
    )
    assert default["workers"][0]["worker_id"] == worker.id
    assert data["rate_limits"][0]["type"] == "noop"
    assert data["execution"][0]["type"] == "noop"
    assert data["execution"][0]["count"] >= 1


def test_job_and_dlq_json(jobqueue: Run, redis_url: str, bury_job: Any) -> None:
    out = jobqueue("enqueue", "echo", "--payload", '{"a": 1}', "--redis-url", redis_url)
    job_id = out.stdout.strip()
    record = check("job", jobqueue("job", job_id, "--json", "--redis-url", redis_url))
    assert (record["id"], record["status"], record["type"]) == (job_id, "queued", "echo")
    assert record["enqueued_at"] is not None
    bury_job("d1", "flaky")
    bury_job("d2", "noop")
    listed = check("dlq-list", jobqueue("dlq", "list", "--json", "--redis-url", redis_url))
    assert [j["id"] for j in listed["jobs"]] == ["d2", "d1"] or {
        j["id"] for j in listed["jobs"]
    } == {"d1", "d2"}
    shown = check("job", jobqueue("dlq", "show", "d1", "--json", "--redis-url", redis_url))
    assert (shown["status"], shown["dead_reason"], shown["type"]) == ("dead", "exception", "flaky")
    assert "RuntimeError: x" in shown["traceback"]
    assert shown["dead_at"].startswith("2023-11-14T22:")


def test_health_json_reachable_and_not(jobqueue: Run, redis_url: str, down_url: str) -> None:
    data = check("health", jobqueue("health", "--json", "--redis-url", redis_url))
    assert data["redis"]["reachable"] is True
    down = jobqueue("health", "--json", "--redis-url", down_url)
    assert down.returncode == 2
    data = check("health", down)
    assert data["redis"]["reachable"] is False
    assert "hunter2" not in down.stdout


def test_bulk_enqueue_from_a_file_in_batches(jobqueue: Run, redis_url: str, tmp_path: Path) -> None:
    lines = [json.dumps({"type": "noop", "payload": {"n": i}}) for i in range(1200)]
    lines += [json.dumps({"type": "echo", "queue": "other", "priority": "low"})]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = jobqueue(
        "enqueue", "--from-file", str(path), "--priority", "high", "--redis-url", redis_url
    )
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == len(set(ids)) == 1201
    assert proc.stderr == "", "no progress bar without a terminal"
    data = check(
        "stats", jobqueue("stats", "--json", "-q", "default,other", "--redis-url", redis_url)
    )
    by_queue = {q["queue"]: q for q in data["queues"]}
    assert by_queue["default"]["waiting_by_priority"]["3"] == 1200
    assert by_queue["other"]["waiting_by_priority"]["7"] == 1
    piped = jobqueue("enqueue", "--from-file", "-", "--redis-url", redis_url, stdin=lines[0] + "\n")
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.split()) == 1


def test_purge_asks_at_a_terminal(redis_url: str, bury_job: Any) -> None:
    """At a terminal, purge asks; "n" keeps the jobs (exit 1), "y" deletes them."""
    bury_job("d1")
    env = {**os.environ, "JQW_REDIS_URL": redis_url}

    def purge(answer: str) -> subprocess.CompletedProcess[str]:
        master, slave = os.openpty()
        try:
            os.write(master, answer.encode())
            return subprocess.run(
                [str(BIN / "jobqueue"), "dlq", "purge", "--all"],
                stdin=slave, capture_output=True, text=True, timeout=60, env=env, check=False,
            )  # fmt: skip
        finally:
            os.close(master)
            os.close(slave)

    kept = purge("n\n")
    assert kept.returncode == 1, kept.stderr
    assert "Purge 1 dead-lettered job(s) of queue default for good? [y/N]" in kept.stderr
    assert kept.stderr.splitlines()[-1].endswith("purge cancelled; nothing was deleted")
    gone = purge("y\n")
    assert (gone.returncode, gone.stdout.strip()) == (0, "purged 1"), gone.stderr


def test_a_progress_bar_at_a_terminal_and_the_ids_on_stdout(redis_url: str) -> None:
    """stderr a terminal, stdout a pipe: the bar goes to the terminal, every id to stdout."""
    master, slave = os.openpty()
    shown = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [str(BIN / "jobqueue"), "enqueue", "noop", "--count", "2000", "--redis-url", redis_url],
            stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120, check=False,
            env={**os.environ, "COLUMNS": "100"},
        )  # fmt: skip
    finally:
        os.close(slave)
        reader.join(5)
        os.close(master)
    assert proc.returncode == 0
    assert len(set(proc.stdout.split())) == 2000
    assert "2000/2000" in shown.decode(errors="replace")


def test_replay_and_purge_of_many_dead_jobs_go_in_pages(
    jobqueue: Run, redis_url: str, bury_job: Any
) -> None:
    """More than one page (500) by filter: every matching job is acted on, no other."""
    for i in range(1100):
        bury_job(f"a{i}", "alpha")
    for i in range(30):
        bury_job(f"b{i}", "beta")
    replayed = jobqueue("dlq", "replay", "--type", "alpha", "--redis-url", redis_url)
    assert (replayed.returncode, replayed.stdout.strip()) == (0, "replayed 1100"), replayed.stderr
    data = check("stats", jobqueue("stats", "--json", "--redis-url", redis_url))
    assert (data["queues"][0]["waiting"], data["queues"][0]["dead"]) == (1100, 30)
    purged = jobqueue("dlq", "purge", "--all", "--yes", "--redis-url", redis_url)
    assert (purged.returncode, purged.stdout.strip()) == (0, "purged 30"), purged.stderr
    listed = check("dlq-list", jobqueue("dlq", "list", "--json", "--redis-url", redis_url))
    assert listed["jobs"] == []
