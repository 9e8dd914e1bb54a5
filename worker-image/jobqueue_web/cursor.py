"""The DLQ's page cursor: (score of the last row shown, rows with that score already shown).

Dead jobs are a sorted set scored by the time they died. "Everything at or below
this score, skipping the ones already shown at exactly this score" stays O(log n)
however deep the reader pages, unlike an offset, and survives jobs being added
or replayed between pages. Pure, so ties and malformed input are tested by tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cursor:
    max_score_ms: float | None  # None: start at the newest
    skip: int = 0

    def encode(self) -> str:
        if self.max_score_ms is None:
            return ""
        return f"{self.max_score_ms:.0f}-{self.skip}"


def parse_cursor(text: str | None) -> Cursor:
    """A cursor from the URL; raises ValueError with a one-line reason for junk."""
    if not text:
        return Cursor(None)
    score, sep, skip = text.partition("-")
    if not sep or not score.isdigit() or not skip.isdigit():
        raise ValueError(f"cursor {text[:40]!r} is not <score>-<skip>")
    return Cursor(float(score), int(skip))


def advance(cursor: Cursor, scores: Sequence[float]) -> Cursor:
    """The cursor after the rows whose scores (newest first) were just consumed."""
    if not scores:
        return cursor
    last = scores[-1]
    ties = 0
    for s in reversed(scores):
        if s != last:
            break
        ties += 1
    if cursor.max_score_ms is not None and last == cursor.max_score_ms:
        ties += cursor.skip  # the page never left the previous score
    return Cursor(last, ties)
