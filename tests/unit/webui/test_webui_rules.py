"""The web UI's pure rules by table: who may do what, the DLQ cursor, rates, redaction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobqueue_web.auth import (
    AuthConfig,
    Role,
    bind_problem,
    csrf_ok,
    csrf_token,
    may_change,
    may_read,
    read_session,
    role_for_proxy_user,
    role_for_token,
    sign_session,
)
from jobqueue_web.cursor import Cursor, advance, parse_cursor
from jobqueue_web.kube import view_of
from jobqueue_web.redact import MASK, redact
from jobqueue_web.samples import Sample, SampleBuffer, rates

ADMIN, RO = "a" * 20, "r" * 20
AUTH = AuthConfig(admin_tokens=(ADMIN,), readonly_tokens=(RO,))
SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("host", "auth", "refused"),
    [
        ("127.0.0.1", AuthConfig(), False),
        ("::1", AuthConfig(), False),
        ("localhost", AuthConfig(), False),
        ("0.0.0.0", AuthConfig(), True),
        ("10.0.0.5", AuthConfig(), True),
        ("0.0.0.0", AUTH, False),
        ("0.0.0.0", AuthConfig(proxy_user_header="X-Forwarded-User"), False),
    ],
)
def test_binding_beyond_loopback_needs_auth(host: str, auth: AuthConfig, refused: bool) -> None:
    problem = bind_problem(host, auth)
    assert (problem is not None) is refused
    if problem:
        assert host in problem
        assert "\n" not in problem


@pytest.mark.parametrize(
    ("token", "role"),
    [(ADMIN, Role.ADMIN), (RO, Role.READONLY), ("", Role.ANONYMOUS), (ADMIN + "x", Role.ANONYMOUS)],
)
def test_token_roles(token: str, role: Role) -> None:
    assert role_for_token(token, AUTH) is role


@pytest.mark.parametrize(
    ("role", "auth", "read", "change"),
    [
        (Role.ADMIN, AUTH, True, True),
        (Role.READONLY, AUTH, True, False),
        (Role.ANONYMOUS, AUTH, False, False),
        (Role.ANONYMOUS, AuthConfig(), True, True),  # loopback without auth: the local user
    ],
)
def test_permissions(role: Role, auth: AuthConfig, read: bool, change: bool) -> None:
    assert may_read(role, auth) is read
    assert may_change(role, auth) is change


def test_proxy_users() -> None:
    auth = AuthConfig(proxy_user_header="X-User", proxy_admin_users=("ops",))
    assert role_for_proxy_user("ops", auth) is Role.ADMIN
    assert role_for_proxy_user("dev", auth) is Role.READONLY
    assert role_for_proxy_user("", auth) is Role.ANONYMOUS


def test_sessions_expire_and_resist_forgery() -> None:
    cookie = sign_session(SECRET, Role.READONLY, now=1000.0, ttl_s=60)
    assert read_session(SECRET, cookie, now=1059.0) is Role.READONLY
    assert read_session(SECRET, cookie, now=1061.0) is Role.ANONYMOUS
    assert read_session(b"x" * 32, cookie, now=1000.0) is Role.ANONYMOUS
    promoted = cookie.replace("readonly", "admin", 1)
    assert read_session(SECRET, promoted, now=1000.0) is Role.ANONYMOUS
    for junk in ("", "a.b", "admin.notanumber.mac", "...."):
        assert read_session(SECRET, junk, now=0.0) is Role.ANONYMOUS


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_csrf_token_is_bound_to_its_visitor(me: str, other: str) -> None:
    assert csrf_ok(SECRET, me, csrf_token(SECRET, me))
    assert not csrf_ok(SECRET, me, "")
    if other != me:
        assert not csrf_ok(SECRET, me, csrf_token(SECRET, other))


@pytest.mark.parametrize(
    ("text", "cursor"),
    [(None, Cursor(None)), ("", Cursor(None)), ("1700000000000-3", Cursor(1.7e12, 3))],
)
def test_cursor_parses(text: str | None, cursor: Cursor) -> None:
    assert parse_cursor(text) == cursor


@pytest.mark.parametrize("junk", ["abc", "12", "-3", "12-", "1e5-1", "12--1", "x-1"])
def test_cursor_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        parse_cursor(junk)


@pytest.mark.parametrize(
    ("start", "scores", "after"),
    [
        (Cursor(None), [], Cursor(None)),
        (Cursor(None), [9, 8, 7], Cursor(7, 1)),
        (Cursor(None), [9, 7, 7], Cursor(7, 2)),
        (Cursor(7, 2), [7, 7], Cursor(7, 4)),  # a page entirely inside one tie
        (Cursor(7, 2), [7, 5], Cursor(5, 1)),
    ],
)
def test_cursor_advances_over_ties(start: Cursor, scores: list[float], after: Cursor) -> None:
    assert advance(start, scores) == after
    assert parse_cursor(after.encode()) == after


def _s(at: float, enq: int, fin: int) -> Sample:
    return Sample(at, 0, 0, 0, 0, 1, enq, fin)


@pytest.mark.parametrize(
    ("rows", "now", "expected"),
    [
        ([], 100.0, None),
        ([_s(100, 5, 5)], 100.0, None),
        ([_s(40, 0, 0), _s(100, 60, 30)], 100.0, (1.0, 0.5)),
        ([_s(10, 0, 0), _s(50, 10, 10), _s(100, 60, 10)], 100.0, (1.0, 0.0)),  # old one ignored
        ([_s(50, 10, 10), _s(100, 0, 0)], 100.0, None),  # counters reset
    ],
)
def test_rates(rows: list[Sample], now: float, expected: tuple[float, float] | None) -> None:
    assert rates(rows, now) == expected


def test_sample_buffer_keeps_one_window_and_sums_queues() -> None:
    buf = SampleBuffer(window_s=60)
    for t in range(0, 200, 10):
        buf.add("a", Sample(t, 1, 0, 0, 0, 1, t, 0))
        buf.add("b", Sample(t, 2, 0, 0, 0, 3, t, 0))
    assert [s.at for s in buf.series("a")] == [130, 140, 150, 160, 170, 180, 190]
    total = buf.total(["a", "b"])
    assert {(s.waiting, s.workers) for s in total} == {(3, 4)}


def test_redaction_masks_configured_fields_at_any_depth() -> None:
    fields = frozenset({"password", "token"})
    got = redact(
        {
            "user": "ann",
            "Password": "p",
            "nested": [{"api_token": "t", "url": "redis://u:hunter2@h:6379/0"}],
        },
        fields,
    )
    assert got["Password"] == MASK
    assert got["user"] == "ann"
    assert got["nested"][0]["api_token"] == MASK
    assert "hunter2" not in got["nested"][0]["url"]


def test_jobqueue_view_reads_spec_and_status() -> None:
    view = view_of(
        {
            "metadata": {"namespace": "ns", "name": "jq"},
            "spec": {
                "scaleTargetRef": {"name": "w"},
                "queues": ["emails"],
                "minReplicas": 0,
                "maxReplicas": 9,
                "scaleUp": {"queueDepth": 20},
                "scaleDown": {"queueDepth": "5"},
            },
            "status": {
                "currentReplicas": 2,
                "desiredReplicas": 4,
                "decisions": [{"action": "a"}, {"action": "b"}, "junk"],
                "conditions": [{"type": "Ready", "status": "True"}],
                "drainingPods": ["w-1", 7],
            },
        }
    )
    assert (view.current, view.desired, view.min_replicas, view.max_replicas) == (2, 4, 0, 9)
    assert view.draining == ("w-1",), "a name that is not a string is dropped"
    assert view.target == "Deployment/w"
    pool = {"apiVersion": "example.com/v1", "kind": "WorkerPool", "name": "p"}
    assert view_of({"spec": {"scaleTargetRef": pool}}).target == "WorkerPool.example.com/p"
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "s"}
    assert view_of({"spec": {"scaleTargetRef": sts}}).target == "StatefulSet/s"
    assert view_of({"status": {"target": "Deployment/old"}}).target == "Deployment/old"
    assert view.queues == ("emails",)
    assert (view.scale_up_depth, view.scale_down_depth) == (20.0, 5.0)
    assert [d["action"] for d in view.decisions] == ["b", "a"]  # newest first
    assert view_of({}).current is None
