"""The leader-election decision is pure: which Lease to write, given what was seen and when."""

from __future__ import annotations

import pytest

from jobqueue_operator.leader import next_lease
from jobqueue_operator.ports import LeaseView

ME = "op-a"
OTHER = LeaseView(holder="op-b", duration_s=10, renewed="t1", transitions=3, version="42")


@pytest.mark.parametrize(
    ("name", "seen", "seen_since", "now", "expected"),
    [
        ("no Lease yet: create it", None, 0.0, 0.0, LeaseView(holder=ME, duration_s=10)),
        ("ours: renew at the version read", LeaseView(ME, 10, "t", 1, "7"), 0.0, 100.0,
         LeaseView(ME, 10, "t", 1, "7")),
        ("another's, fresh: stand by", OTHER, 100.0, 109.9, None),
        ("another's, unrenewed for its duration: take it over", OTHER, 100.0, 110.0,
         LeaseView(ME, 10, "", 4, "42")),
        ("released (empty holder): take it at once", LeaseView("", 1, "t", 3, "9"), 100.0, 100.0,
         LeaseView(ME, 10, "", 4, "9")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_next_lease(
    name: str, seen: LeaseView | None, seen_since: float, now: float, expected: LeaseView | None
) -> None:
    assert next_lease(seen, ME, 10, seen_since, now) == expected


def test_expiry_is_measured_from_when_this_replica_saw_the_record() -> None:
    """A record renewed long ago by the holder's clock but first seen now is not expired."""
    assert next_lease(OTHER, ME, 10, seen_since=1000.0, now=1005.0) is None
