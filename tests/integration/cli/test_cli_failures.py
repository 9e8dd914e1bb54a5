"""Every failure of both console scripts: its exit code and exactly one line on stderr.

Real subprocesses of the installed scripts; the Redis cases use the real Redis
fixture, the Redis-down cases a loopback port where nothing listens.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cli_harness import Run, run_script

# (id, argv, exit code, text the one stderr line must contain)
USAGE = [
    ("payload-not-json", ["enqueue", "noop", "--payload", "{bad"], 2,
     "Invalid value for '--payload': not valid JSON"),
    ("queue-with-space", ["enqueue", "noop", "-q", "a b"], 2,
     "'--queue' / '-q': queue name must not contain braces or whitespace: 'a b'"),
    ("queue-with-brace", ["stats", "-q", "a{b}"], 2, "queue name must not contain braces"),
    ("queue-empty", ["dlq", "list", "-q", ""], 2, "queue name must be 1..200 characters"),
    ("count-zero", ["enqueue", "noop", "--count", "0"], 2,
     "Invalid value for '--count': Input should be greater than or equal to 1"),
    ("count-negative", ["enqueue", "noop", "--count", "-3"], 2, "'--count'"),
    ("count-huge", ["enqueue", "noop", "--count", "100001"], 2, "'--count'"),
    ("priority-out-of-range", ["enqueue", "noop", "--priority", "11"], 2,
     "'--priority': priority must be between 1 and 10: 11"),
    ("priority-unknown-name", ["enqueue", "noop", "--priority", "urgent"], 2,
     "unknown priority name: 'urgent'"),
    ("delay-negative", ["enqueue", "noop", "--delay", "-1"], 2, "'--delay'"),
    ("no-type", ["enqueue"], 2, "give a job TYPE or --from-file FILE"),
    ("type-and-file", ["enqueue", "noop", "--from-file", "x.jsonl"], 2,
     "give either TYPE (with --count) or --from-file"),
    ("file-missing", ["enqueue", "--from-file", "/nonexistent/jobs.jsonl"], 2,
     "cannot read /nonexistent/jobs.jsonl: No such file or directory"),
    ("redis-url-scheme", ["stats", "--redis-url", "http://u:pw@host/"], 2,
     "'--redis-url' (env var: 'JQW_REDIS_URL'): "
     "must start with redis://, rediss://, unix://, redis+sentinel://, redis+cluster://"
     " or their rediss forms (got http scheme)"),
    ("limit-zero", ["dlq", "list", "--limit", "0"], 2, "'--limit'"),
    ("offset-negative", ["dlq", "list", "--offset", "-1"], 2, "'--offset'"),
    ("replay-nothing-chosen", ["dlq", "replay"], 2, "give job ids, --all, --type or --reason"),
    ("replay-ids-and-filter", ["dlq", "replay", "x", "--all"], 2,
     "give job ids or a filter, not both"),
    ("health-redis-url", ["health", "--redis-url", "tcp://h"], 2, "'--redis-url'"),
    ("health-queue", ["health", "-q", "ok,a b"], 2, "queue name must not contain"),
    ("health-threshold", ["health", "--depth-warning", "-1"], 2, "'--depth-warning'"),
    ("unknown-option", ["stats", "--bogus"], 2, "No such option: --bogus"),
    ("unknown-command", ["frobnicate"], 2, "No such command 'frobnicate'"),
    ("log-format", ["worker", "--log-format", "xml"], 2, "'--log-format'"),
    ("concurrency-zero", ["worker", "--concurrency", "0"], 2, "'--concurrency'"),
    ("worker-redis-url", ["worker", "--redis-url", "http://u:pw@h"], 2,
     "invalid configuration: JQW_REDIS_URL: must start with redis://, rediss://, unix://"),
    ("worker-queues", ["worker", "--queues", "a,a b"], 2,
     "JQW_QUEUES: queue name must not contain braces or whitespace: 'a b'"),
    ("worker-handlers", ["worker", "--handlers", "no_such_module"], 2,
     "JQW_HANDLERS: cannot import 'no_such_module'"),
]  # fmt: skip

REDIS_DOWN = [
    ["stats"],
    ["stats", "--json"],
    ["job", "some-id"],
    ["job", "some-id", "--json"],
    ["dlq", "list"],
    ["dlq", "list", "--json"],
    ["dlq", "show", "some-id"],
    ["dlq", "replay", "some-id"],
    ["dlq", "purge", "--all", "--yes"],
    ["enqueue", "noop"],
    ["enqueue", "noop", "--count", "3"],
]


def _one_line(proc: object, prog: str = "jobqueue") -> str:
    stderr = proc.stderr  # type: ignore[attr-defined]
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    assert re.match(rf"^{re.escape(prog)}( [a-z]+)*: error: ", lines[0]), lines[0]
    return str(lines[0])


@pytest.mark.parametrize(
    ("argv", "code", "text"), [c[1:] for c in USAGE], ids=[c[0] for c in USAGE]
)
def test_usage_errors_are_one_line_and_exit_2(
    jobqueue: Run, argv: list[str], code: int, text: str, tmp_path: Path
) -> None:
    proc = jobqueue(*argv, env={"JQW_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert proc.returncode == code, proc.stderr
    line = _one_line(proc)
    assert text in line
    assert proc.stdout == ""
    assert "pw@" not in line


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        ('{"type": "noop"}\n{bad\n', "jobs.jsonl line 2: not valid JSON"),
        ('{"type": "noop", "colour": "red"}\n', "jobs.jsonl line 1: unknown field(s) colour"),
        ('{"payload": 1}\n', 'jobs.jsonl line 1: expected an object with a "type" string'),
        ('{"type": "noop", "priority": 0}\n', "jobs.jsonl line 1: invalid job: priority"),
        ('{"type": "noop", "queue": "a b"}\n', "jobs.jsonl line 1: invalid job: queue"),
        ("\n\n", "jobs.jsonl holds no jobs"),
    ],
    ids=["bad-json", "unknown-field", "no-type", "bad-priority", "bad-queue", "empty"],
)
def test_a_bad_file_line_is_named_and_nothing_is_enqueued(
    jobqueue: Run, redis_url: str, tmp_path: Path, lines: str, text: str
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(lines)
    proc = jobqueue("enqueue", "--from-file", str(path), "--redis-url", redis_url)
    assert proc.returncode == 2, proc.stderr
    assert text in _one_line(proc)
    stats = jobqueue("stats", "--json", "--redis-url", redis_url)
    assert '"waiting": 0' in stats.stdout, "a bad file must enqueue nothing"


@pytest.mark.parametrize("argv", REDIS_DOWN, ids=[" ".join(a) for a in REDIS_DOWN])
def test_unreachable_redis_is_one_line_and_exit_3(
    jobqueue: Run, down_url: str, argv: list[str]
) -> None:
    proc = jobqueue(*argv, env={"JQW_REDIS_URL": down_url})
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc)
    port = down_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0: " in line
    assert "hunter2" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", ["stats", "job", "health"])
def test_a_bad_queue_in_the_environment_names_the_variable(jobqueue: Run, command: str) -> None:
    argv = [command, "some-id"] if command == "job" else [command]
    proc = jobqueue(*argv, env={"JQW_QUEUES": "ok,x y", "JQW_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert proc.returncode == 2, proc.stderr
    assert "JQW_QUEUES: queue name must not contain braces or whitespace: 'x y'" in _one_line(proc)


def test_debug_prints_the_traceback_before_the_line(jobqueue: Run, down_url: str) -> None:
    proc = jobqueue("--debug", "stats", "--redis-url", down_url)
    assert proc.returncode == 3
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("jobqueue: error: cannot reach Redis at")
    assert "hunter2" not in proc.stderr


@pytest.mark.redis
def test_a_missing_job_is_exit_1(jobqueue: Run, redis_url: str) -> None:
    proc = jobqueue("job", "nope", "-q", "default,other", "--redis-url", redis_url)
    assert proc.returncode == 1
    assert _one_line(proc).endswith(
        "job nope not found in default, other (expired or never existed)"
    )
    proc = jobqueue("dlq", "show", "nope", "--redis-url", redis_url)
    assert proc.returncode == 1
    assert "job nope not found in queue default" in _one_line(proc)


@pytest.mark.redis
def test_replay_of_an_unknown_id_names_it_and_replays_the_rest(
    jobqueue: Run, redis_url: str, bury_job: object
) -> None:
    bury_job("d1")  # type: ignore[operator]
    proc = jobqueue("dlq", "replay", "d1", "nope", "--redis-url", redis_url)
    assert proc.returncode == 1
    assert _one_line(proc).endswith("not in the dead-letter queue of default: nope")
    assert proc.stdout.strip() == "replayed 1"
    again = jobqueue("dlq", "replay", "d1", "--redis-url", redis_url)
    assert again.returncode == 1, "d1 left the DLQ with the first replay"


@pytest.mark.redis
def test_purge_without_a_terminal_and_without_yes_refuses_and_deletes_nothing(
    jobqueue: Run, redis_url: str, bury_job: object
) -> None:
    bury_job("d1")  # type: ignore[operator]
    proc = jobqueue("dlq", "purge", "--all", "--redis-url", redis_url, stdin="y\n")
    assert proc.returncode == 2
    assert _one_line(proc).endswith(
        "refusing to purge without confirmation: stdin is not a terminal (pass --yes)"
    )
    listed = jobqueue("dlq", "list", "--json", "--redis-url", redis_url)
    assert '"id": "d1"' in listed.stdout
    done = jobqueue("dlq", "purge", "--all", "--yes", "--redis-url", redis_url)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "purged 1", "")


def test_simulate_without_the_simulator_is_one_line() -> None:
    """The worker image has no simulator: `jobqueue simulate` says so, nothing else breaks."""
    import subprocess

    code = (
        "import sys; sys.modules['jobqueue_simulator'] = None\n"
        "from jobqueue_cli import main; main(sys.argv[1:])"
    )
    for argv in (["simulate", "--spec", "x"], ["simulate", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 1, proc.stderr
        assert "the simulator is not installed" in _one_line(proc)
    proc = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "simulate" in proc.stdout


OPERATOR = [
    ("standalone-and-lease", ["--standalone", "--lease", "x"], {}, "'--lease'"),
    ("bad-setting", [], {"MAX_WORKERS": "zero"}, "invalid setting MAX_WORKERS: "),
    ("bad-port", [], {"JQO_METRICS_PORT": "70000"}, "JQO_METRICS_PORT"),
    ("log-format", ["--log-format", "xml"], {}, "'--log-format'"),
    ("log-format-env", [], {"JQO_LOG_FORMAT": "yaml"}, "JQO_LOG_FORMAT"),
    ("lease-without-name", ["--lease"], {}, "'--lease'"),
    ("unknown-option", ["--bogus"], {}, "No such option: --bogus"),
]


@pytest.mark.parametrize(
    ("argv", "env", "text"), [c[1:] for c in OPERATOR], ids=[c[0] for c in OPERATOR]
)
def test_operator_usage_errors_are_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], text: str
) -> None:
    proc = run_script("jobqueue-operator", *argv, env=env)
    assert proc.returncode == 2, proc.stderr
    assert text in _one_line(proc, "jobqueue-operator")


@pytest.mark.parametrize("name", ["jobqueue", "jobqueue-operator"])
def test_version(name: str) -> None:
    proc = run_script(name, "--version")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rf"{name} \d+\.\d+\.\d+\S*\n", proc.stdout), proc.stdout


@pytest.fixture
def acl_urls(redis_url: str) -> Iterator[tuple[str, str]]:
    """(a user who may log in but run nothing, the same user with a wrong password)."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("jqnobody", enabled=True, passwords=["+nobody-pw"], keys=["*"],
                      commands=["-@all", "+ping", "+hello", "+auth", "+client"])  # fmt: skip
    try:
        yield (
            redis_url.replace("redis://", "redis://jqnobody:nobody-pw@"),
            redis_url.replace("redis://", "redis://jqnobody:wrong-pw@"),
        )
    finally:
        admin.acl_deluser("jqnobody")
        admin.close()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["stats"], "no permissions to run the 'time' command"),
        (["enqueue", "noop"], "no permissions to run the 'evalsha' command"),
        (["dlq", "list"], "no permissions to run the 'zrevrange' command"),
    ],
)
def test_redis_refusing_a_command_is_exit_1_and_a_refused_login_exit_3(
    jobqueue: Run, acl_urls: tuple[str, str], argv: list[str], refused: str
) -> None:
    allowed, wrong = acl_urls
    proc = jobqueue(*argv, "--redis-url", allowed)
    assert proc.returncode == 1, proc.stderr
    line = _one_line(proc)
    assert re.search(r"Redis at redis://jqnobody:\*\*\*@127\.0\.0\.1:\d+/0 refused: ", line), line
    assert refused in line
    proc = jobqueue(*argv, "--redis-url", wrong)
    assert proc.returncode == 3, proc.stderr
    assert "invalid username-password pair" in _one_line(proc)
    assert "nobody-pw" not in proc.stderr
    assert "wrong-pw" not in proc.stderr
