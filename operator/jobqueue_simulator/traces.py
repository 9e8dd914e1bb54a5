"""Arrival traces: the file format, reading and writing, and the reference generators.

Format (CSV, UTF-8)::

    # mean_service_seconds=2.0        optional metadata lines: "# key=value"
    # any other comment line is ignored
    t_seconds,count                   optional header
    0,3                               3 jobs arrive at t = 0 s
    1.5,1                             1 job at t = 1.5 s
    7.25                              a row with one field: one job at t = 7.25 s

So a file can be a per-second histogram (``t_seconds,count``), a list of
single arrivals (``t_seconds``), or a mix. All ``count`` jobs of a row arrive
at exactly ``t_seconds``; the shipped traces use 1-second bins, which makes
arrivals slightly burstier than Poisson within a second (the same for every
policy compared). Rows need not be sorted. ``mean_service_seconds`` in the
metadata is the default mean service time when the CLI does not give one.

The generators are pure functions of a ``random.Random``; ``gen_traces`` runs
them with fixed seeds to write the committed files in ``traces/``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MEAN_SERVICE_KEY = "mean_service_seconds"
SEED_KEY = "seed"


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True)
class Trace:
    """Sorted arrival times plus the file's metadata."""

    arrivals: tuple[float, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    name: str = "trace"

    @property
    def mean_service_s(self) -> float | None:
        """The metadata's mean service time, if the trace carries one."""
        raw = self.metadata.get(MEAN_SERVICE_KEY)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise TraceError(f"{self.name}: {MEAN_SERVICE_KEY}={raw!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise TraceError(f"{self.name}: {MEAN_SERVICE_KEY} must be positive")
        return value

    @property
    def seed(self) -> int | None:
        """The trace's own seed (``# seed=N``), so each trace replays its own jobs."""
        raw = self.metadata.get(SEED_KEY)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise TraceError(f"{self.name}: {SEED_KEY}={raw!r} is not a whole number") from None

    @property
    def duration_s(self) -> float:
        """Time of the last arrival (0 for an empty trace)."""
        return self.arrivals[-1] if self.arrivals else 0.0


def parse_trace(text: str, name: str = "trace") -> Trace:
    """Parse the format in the module docstring; raise :class:`TraceError` on a bad row."""
    times: list[float] = []
    metadata: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if "=" in body:
                key, value = body.split("=", 1)
                if key.strip().isidentifier():
                    metadata[key.strip()] = value.strip()
            continue
        fields = [f.strip() for f in line.split(",")]
        if fields[0] == "t_seconds" and not times:
            continue  # the header
        if len(fields) > 2:
            raise TraceError(f"{name}:{number}: expected 't_seconds[,count]', got {line!r}")
        try:
            t = float(fields[0])
            count = int(fields[1]) if len(fields) == 2 else 1
        except ValueError:
            raise TraceError(f"{name}:{number}: not a number in {line!r}") from None
        if not math.isfinite(t) or t < 0:
            raise TraceError(f"{name}:{number}: t_seconds must be a finite number >= 0")
        if count < 0:
            raise TraceError(f"{name}:{number}: count must be >= 0")
        times.extend([t] * count)
    times.sort()
    return Trace(tuple(times), metadata, name)


def load_trace(path: Path) -> Trace:
    """Read a trace file."""
    return parse_trace(path.read_text(encoding="utf-8"), name=path.name)


def format_trace(rows: Iterable[tuple[int, int]], metadata: dict[str, str], comment: str) -> str:
    """Write per-second counts as ``t_seconds,count``; rows with count 0 are left out."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"# {key}={value}" for key, value in metadata.items()]
    lines.append("t_seconds,count")
    lines += [f"{t},{count}" for t, count in rows if count > 0]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- generators


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; fine for the per-second rates used here, λ ≤ ~500)."""
    if lam <= 0:
        return 0
    if lam > 500:
        # Normal approximation keeps exp(-λ) from underflowing.
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def steady(rng: random.Random, *, rate: float, duration_s: int) -> list[tuple[int, int]]:
    """Poisson arrivals at a constant ``rate`` per second."""
    return [(t, poisson(rng, rate)) for t in range(duration_s)]


def daily_wave(
    rng: random.Random, *, low: float, high: float, period_s: int, duration_s: int
) -> list[tuple[int, int]]:
    """A day compressed into ``period_s``: a cosine rate from ``low`` (night) to ``high``."""
    rows = []
    for t in range(duration_s):
        phase = (1 - math.cos(2 * math.pi * t / period_s)) / 2
        rows.append((t, poisson(rng, low + (high - low) * phase)))
    return rows


def burst(
    rng: random.Random, *, base: float, burst_at_s: int, burst_jobs: int, duration_s: int
) -> list[tuple[int, int]]:
    """A low Poisson background with ``burst_jobs`` landing at once at ``burst_at_s``."""
    rows = steady(rng, rate=base, duration_s=duration_s)
    return [(t, c + (burst_jobs if t == burst_at_s else 0)) for t, c in rows]


def spiky(
    rng: random.Random,
    *,
    base: float,
    spikes: int,
    spike_jobs: tuple[int, int],
    spike_len_s: int,
    duration_s: int,
) -> list[tuple[int, int]]:
    """A Poisson background plus ``spikes`` short spikes of random size at random times."""
    counts = [poisson(rng, base) for _ in range(duration_s)]
    for _ in range(spikes):
        start = rng.randrange(0, max(1, duration_s - spike_len_s))
        jobs = rng.randint(*spike_jobs)
        for i in range(jobs):
            counts[start + i % spike_len_s] += 1
    return list(enumerate(counts))
