"""Checks the rate-limit tests make on admission times (test support only)."""

from __future__ import annotations

from collections.abc import Sequence


def max_in_any_window(times: Sequence[int], period_ms: int) -> int:
    """The most admissions in any half-open window ``[s, s + period)``, s over the times."""
    ts = sorted(times)
    best, j = 0, 0
    for i, s in enumerate(ts):
        j = max(j, i)
        while j < len(ts) and ts[j] < s + period_ms:
            j += 1
        best = max(best, j - i)
    return best
