"""The web UI at the request level against a real Redis: DLQ cursor pages, filters, refusals."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from jobqueue_protocol import keys
from jobqueue_web.app import create_app
from jobqueue_web.config import WebConfig
from jobqueue_worker.envelope import JobEnvelope

pytestmark = pytest.mark.redis

QUEUE = "mail"
N = 1_200


def _bury(url: str) -> list[str]:
    """N dead jobs laid out as the worker's scripts leave them; many share a millisecond
    (a reaper dead-letters a batch at once), which is what the cursor must survive."""
    client = redis.Redis.from_url(url, decode_responses=True)
    pipe = client.pipeline(transaction=False)
    ids = []
    for i in range(N):
        job_id = f"job{i:05d}"
        ids.append(job_id)
        score = 1_700_000_000_000 + (i // 25)  # 25 jobs per millisecond
        pipe.zadd(keys.dead_key(QUEUE), {job_id: score})
        envelope = JobEnvelope(id=job_id, type="b" if i % 7 == 0 else "a", queue=QUEUE)
        pipe.hset(
            keys.job_key(QUEUE, job_id),
            mapping={
                "status": "dead",
                "envelope": envelope.to_json(),
                "dead_reason": "permanent" if i % 2 else "exception",
                "error": f"boom {i}",
                "attempt": "3",
            },
        )
    pipe.hset(keys.counters_key(QUEUE), "dead", N)
    pipe.execute()
    client.close()
    return ids


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    app = create_app(WebConfig(redis_url=redis_url, queues=(QUEUE,), kube_enabled=False))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _walk(client: TestClient, first: str) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    trips: list[int] = []
    url: str | None = first
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.text
        trips.append(int(re.search(r"round trips\";dur=(\d+)", page.headers["server-timing"])[1]))
        seen += re.findall(r'<tr data-id="([^"]+)"', page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = found[1].replace("&amp;", "&") if found else None
    return seen, trips


def test_cursor_pages_visit_every_dead_job_once_newest_first(
    client: TestClient, redis_url: str
) -> None:
    ids = _bury(redis_url)
    seen, trips = _walk(client, f"/dlq/{QUEUE}")
    newest_first = sorted(ids, key=lambda i: (-(int(i[3:]) // 25), i), reverse=False)
    assert len(seen) == N
    assert set(seen) == set(ids)
    # Within one millisecond Redis orders members in reverse, so compare per score.
    assert [int(i[3:]) // 25 for i in seen] == [int(i[3:]) // 25 for i in newest_first]
    assert set(trips) == {2}  # one page: the ids, then the rows' fields


def test_filtered_pages_find_exactly_the_matching_jobs(client: TestClient, redis_url: str) -> None:
    ids = _bury(redis_url)
    seen, _ = _walk(client, f"/dlq/{QUEUE}?type=b&reason=permanent")
    expected = {i for n, i in enumerate(ids) if n % 7 == 0 and n % 2}
    assert sorted(seen) == sorted(expected)


def test_purge_by_filter_confirms_with_a_count_then_acts(
    client: TestClient, redis_url: str
) -> None:
    ids = _bury(redis_url)
    page = client.get(f"/dlq/{QUEUE}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    form = {"csrf": csrf, "action": "purge", "scope": "filter", "type": "b"}
    confirm = client.post(f"/dlq/{QUEUE}/action", data=form)
    expected = len([i for n, i in enumerate(ids) if n % 7 == 0])
    assert f"Purge {expected} dead job(s)" in confirm.text
    assert client.get(f"/dlq/{QUEUE}?type=b").text.count("<tr data-id=") == 50  # nothing yet
    done = client.post(f"/dlq/{QUEUE}/action", data={**form, "confirm": "yes"})
    assert f"purged {expected}" in done.text
    left, _ = _walk(client, f"/dlq/{QUEUE}")
    assert len(left) == N - expected


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        (f"/dlq/{QUEUE}?cursor=junk", 400, "cursor"),
        ("/dlq/bad%20name", 400, "queue"),
        (f"/jobs/{QUEUE}/nope", 404, "no job nope"),
        ("/api/samples?queue=bad%20name", 400, "queue"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(
    client: TestClient, url: str, status: int, says: str
) -> None:
    answer = client.get(url)
    assert answer.status_code == status
    assert says in answer.text


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    answer = client.get("/")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in answer.text  # only <script src=...>
    assert " style=" not in answer.text


def test_listening_beyond_loopback_without_auth_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from jobqueue_cli import main; main()", "web", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no authentication is configured" in lines[0]


def test_web_without_the_web_extra_is_one_line_naming_it() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from jobqueue_cli import main; main(sys.argv[1:])"
    )
    for argv in (["web"], ["web", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "the web UI is not installed (uvicorn)" in lines[0]
        assert "jobqueue-worker[web]" in lines[0]


def test_redis_down_is_a_one_line_503_and_the_server_stays_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    config = WebConfig(redis_url=f"redis://:pw-secret@127.0.0.1:{port}/0", queues=(QUEUE,))
    with TestClient(create_app(config), base_url="http://127.0.0.1") as c:
        for url in ("/", f"/dlq/{QUEUE}", "/workers"):
            answer = c.get(url)
            assert answer.status_code == 503
            assert answer.text.startswith("Redis is unavailable:")
            assert answer.text.count("\n") == 1
            assert "pw-secret" not in answer.text
        assert c.get("/healthz").status_code == 200
