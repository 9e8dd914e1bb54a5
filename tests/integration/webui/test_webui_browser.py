"""The web UI end to end in Debian's chromium, against a real Redis and a real worker.

Jobs fail, the overview counts them live, the failing job's traceback is read,
the handler is fixed and the job replayed from the DLQ page, and it completes.
Then the refusals: read-only users, anonymous callers and forged forms.
Screenshots of every page are taken; `make webui-screenshots` puts them in docs/.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pytest

from jobqueue_worker.producer import SyncProducer

pytestmark = [pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

WebServer = Any  # conftest's WebServer: url, admin_token, readonly_token, docs


def _sign_in(page: Any, server: WebServer, token: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _shot(page: Any, server: WebServer, name: str) -> None:
    page.screenshot(path=str(server.docs / f"webui-{name}.png"), full_page=True)


def _enqueue(redis_url: str, failing: int, passing: int) -> list[str]:
    producer = SyncProducer(redis_url)
    try:
        bad = [
            producer.enqueue("flaky", {"card": f"4000-{i}", "amount": 10 + i, "api_token": "tok-x"})
            for i in range(failing)
        ]
        for _ in range(passing):
            producer.enqueue("ok", {})
    finally:
        producer.close()
    return bad


def test_fail_inspect_fix_replay_complete(
    browser: Any, web_server: WebServer, worker_process: Any, redis_url: str, fixed_file: Path
) -> None:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    _sign_in(page, web_server, web_server.admin_token)

    worker_process()
    failing = _enqueue(redis_url, failing=4, passing=3)
    # The overview is not reloaded: htmx brings the new counts in by itself.
    dead_cell = page.locator('tr[data-queue="default"] td[data-col="dead"]')
    dead_cell.filter(has_text=re.compile(r"^\s*4\s*$")).wait_for(timeout=30_000)
    page.locator('tr[data-queue="default"] td[data-col="workers"]').filter(has_text="1").wait_for(
        timeout=15_000
    )
    page.locator("#chart[data-points]").wait_for(timeout=15_000)
    _shot(page, web_server, "overview")

    # The DLQ page lists the four; open one and read its traceback.
    page.get_by_role("link", name="Dead letters").click()
    page.wait_for_url("**/dlq")
    page.get_by_role("link", name="default").click()
    page.wait_for_url("**/dlq/default")
    rows = page.locator("tbody tr[data-id]")
    assert rows.count() == 4
    _shot(page, web_server, "dlq")
    victim = failing[0]
    page.get_by_role("link", name=victim).click()
    page.wait_for_url(f"**/jobs/default/{victim}")
    traceback = page.locator('[data-field="traceback"]').inner_text()
    assert "ChargeDeclinedError: card 4000-0 declined by the old handler" in traceback
    assert "webui_handlers.py" in traceback
    payload = page.get_by_label("payload").inner_text()
    assert '"api_token": "[redacted]"' in payload
    assert "tok-x" not in page.content()
    _shot(page, web_server, "job")

    # Fix the handler, then replay that one job from the DLQ page.
    fixed_file.write_text("fixed")
    page.goto(f"{web_server.url}/dlq/default")
    page.get_by_label(f"select {victim}").check()
    page.get_by_role("button", name="Replay…").click()
    page.wait_for_url("**/dlq/default/action")
    heading = page.get_by_role("heading", level=1)
    assert re.search(r"Replay 1 dead job", heading.inner_text())
    _shot(page, web_server, "confirm")
    page.get_by_role("button", name="Yes, replay 1").click()
    assert "replayed 1" in page.get_by_role("status").inner_text()
    assert page.locator(f'tr[data-id="{victim}"]').count() == 0

    page.goto(f"{web_server.url}/jobs/default/{victim}")
    for _ in range(100):
        if page.locator('[data-field="status"]').inner_text() == "completed":
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator('[data-field="status"]').inner_text() == "completed"
    assert '"charged": 10' in page.locator('[data-field="result"]').inner_text()

    # The other three: every dead job matching the filter type=flaky.
    page.goto(f"{web_server.url}/dlq/default?type=flaky")
    page.get_by_label("every dead job matching the filter").check()
    page.get_by_role("button", name="Replay…").click()
    page.get_by_role("button", name="Yes, replay 3").click()
    assert "replayed 3" in page.get_by_role("status").inner_text()
    page.goto(web_server.url + "/")
    dead_cell.filter(has_text=re.compile(r"^\s*0\s*$")).wait_for(timeout=30_000)

    page.get_by_role("link", name="Workers").click()
    page.wait_for_url("**/workers")
    worker_row = page.locator("tbody tr[data-worker]")
    assert worker_row.count() == 1
    assert "webui-worker-0" in worker_row.inner_text()
    assert importlib.metadata.version("jobqueue-worker") in worker_row.inner_text()
    _shot(page, web_server, "workers")
    page.get_by_role("link", name="Jobs").click()
    page.wait_for_url("**/jobs")
    _shot(page, web_server, "jobs")
    page.get_by_role("link", name="Scaling").click()
    page.wait_for_url("**/scaling")
    assert "cluster access is off" in page.get_by_role("status").inner_text()
    # No page broke the Content-Security-Policy or threw.
    assert errors == []
    context.close()


def _csrf(page: Any) -> str:
    return str(page.locator('input[name="csrf"]').first.get_attribute("value"))


def test_read_only_user_sees_no_replay_and_cannot_post(
    browser: Any, web_server: WebServer, worker_process: Any, redis_url: str
) -> None:
    worker_process()
    (victim,) = _enqueue(redis_url, failing=1, passing=0)
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, web_server, web_server.readonly_token)
    page.goto(f"{web_server.url}/dlq/default")
    # Keyboard first: Tab reaches the skip link, Enter moves focus into the page.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(100):
        if page.locator(f'tr[data-id="{victim}"]').count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator(f'tr[data-id="{victim}"]').count() == 1
    assert page.get_by_role("button", name="Replay…").count() == 0
    assert page.get_by_role("button", name="Purge…").count() == 0
    page.goto(f"{web_server.url}/jobs/default/{victim}")
    assert page.get_by_role("button", name="Replay…").count() == 0

    # The same POST an admin's form sends, with a valid CSRF token: refused by role.
    answer = page.request.post(
        f"{web_server.url}/dlq/default/action",
        form={
            "csrf": _csrf(page),
            "action": "purge",
            "scope": "selected",
            "id": victim,
            "confirm": "yes",
        },
    )
    assert answer.status == 403
    assert "readonly role cannot" in answer.text()
    page.goto(f"{web_server.url}/dlq/default")
    assert page.locator(f'tr[data-id="{victim}"]').count() == 1  # still dead, not purged
    context.close()


def test_anonymous_and_forged_posts_are_refused(
    browser: Any, web_server: WebServer, worker_process: Any, redis_url: str
) -> None:
    worker_process()
    (victim,) = _enqueue(redis_url, failing=1, passing=0)
    form = {"action": "purge", "scope": "selected", "id": victim, "confirm": "yes"}

    anonymous = browser.new_context()
    page = anonymous.new_page()
    page.goto(web_server.url + "/")
    assert page.url == web_server.url + "/login"  # pages need a sign-in too
    answer = page.request.post(f"{web_server.url}/dlq/default/action", form=form)
    assert answer.status == 401
    anonymous.close()

    admin = browser.new_context()
    page = admin.new_page()
    _sign_in(page, web_server, web_server.admin_token)
    # Signed in as admin, but the form carries no CSRF token, then a wrong one.
    assert page.request.post(f"{web_server.url}/dlq/default/action", form=form).status == 403
    forged = {**form, "csrf": "A" * 43}
    assert page.request.post(f"{web_server.url}/dlq/default/action", form=forged).status == 403
    # A token from another browser's session does not work in this one either.
    other = browser.new_context()
    other_page = other.new_page()
    _sign_in(other_page, web_server, web_server.admin_token)
    stolen = {**form, "csrf": _csrf(other_page)}
    assert page.request.post(f"{web_server.url}/dlq/default/action", form=stolen).status == 403
    other.close()

    for _ in range(100):
        page.goto(f"{web_server.url}/dlq/default")
        if page.locator(f'tr[data-id="{victim}"]').count():
            break
        page.wait_for_timeout(200)
    assert page.locator(f'tr[data-id="{victim}"]').count() == 1  # nothing was purged
    # The genuine form still works, so the refusals above were about the token.
    valid = {**form, "csrf": _csrf(page)}
    done = page.request.post(f"{web_server.url}/dlq/default/action", form=valid)
    assert done.status == 200
    assert "purged 1" in done.text()
    admin.close()
