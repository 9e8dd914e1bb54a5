"""Turn simulation results into numbers, a table and a plot.

Percentiles use the nearest-rank method on the exact waits (no interpolation,
no binning), so a table is reproducible to the last digit for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from jobqueue_simulator.engine import SimResult


@dataclass(frozen=True, slots=True)
class Summary:
    """One row of the comparison table."""

    policy: str
    name: str
    jobs: int
    wait_max_s: float
    direction_changes: int
    arrived: int
    completed: int
    waiting_end: int
    in_service_end: int
    interrupted: int
    replica_seconds: float
    wait_p50_s: float
    wait_p95_s: float
    wait_p99_s: float
    max_depth: int
    scale_actions: int
    scale_ups: int
    scale_downs: int
    peak_replicas: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(result: SimResult) -> Summary:
    """The table row of one run."""
    waits = sorted(result.waits)
    ups = sum(1 for e in result.scale_events if e.to_replicas > e.from_replicas)
    peak = max(
        [s.replicas for s in result.samples] + [e.to_replicas for e in result.scale_events],
        default=0,
    )
    direction, flips = 0, 0
    for event in result.scale_events:
        step = 1 if event.to_replicas > event.from_replicas else -1
        flips += direction not in (0, step)
        direction = step
    return Summary(
        policy=result.policy,
        name=result.policy,
        jobs=result.arrived,
        wait_max_s=waits[-1] if waits else 0.0,
        direction_changes=flips,
        arrived=result.arrived,
        completed=result.completed,
        waiting_end=result.waiting_end,
        in_service_end=result.in_service_end,
        interrupted=result.interrupted,
        replica_seconds=result.replica_seconds,
        wait_p50_s=percentile(waits, 50),
        wait_p95_s=percentile(waits, 95),
        wait_p99_s=percentile(waits, 99),
        max_depth=result.max_depth,
        scale_actions=len(result.scale_events),
        scale_ups=ups,
        scale_downs=len(result.scale_events) - ups,
        peak_replicas=peak,
    )


_COLUMNS = (
    "policy",
    "replica·s",
    "wait p50",
    "p95",
    "p99",
    "max depth",
    "scale actions (up/down)",
    "peak",
    "interrupted",
    "completed",
    "left",
)


def _cells(s: Summary) -> list[str]:
    return [
        s.policy,
        f"{s.replica_seconds:,.0f}",
        f"{s.wait_p50_s:.1f}s",
        f"{s.wait_p95_s:.1f}s",
        f"{s.wait_p99_s:.1f}s",
        f"{s.max_depth:,}",
        f"{s.scale_actions} ({s.scale_ups}/{s.scale_downs})",
        str(s.peak_replicas),
        f"{s.interrupted:,}",
        f"{s.completed:,}",
        f"{s.waiting_end + s.in_service_end:,}",
    ]


def table(summaries: Sequence[Summary], title: str) -> Table:
    """A rich table of the comparison."""
    out = Table(title=title)
    for column in _COLUMNS:
        out.add_column(column, justify="left" if column == "policy" else "right")
    for summary in summaries:
        out.add_row(*_cells(summary))
    return out


def markdown(summaries: Sequence[Summary]) -> str:
    """The same table as Markdown (for docs and issue comments)."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_cells(s)) + " |" for s in summaries]
    return "\n".join(lines) + "\n"


def plot(results: Sequence[SimResult], path: Path, title: str) -> None:
    """PNG: queue depth (top) and replicas (bottom) over time, one line per policy.

    Uses matplotlib's object API with the Agg canvas directly: no pyplot global
    state, no display needed, safe in tests and CI.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), layout="constrained")
    FigureCanvasAgg(fig)
    depth_ax, replica_ax = fig.subplots(2, 1, sharex=True)
    for result in results:
        ts = [s.t / 60 for s in result.samples]
        depth_ax.plot(ts, [s.depth for s in result.samples], label=result.policy, linewidth=1)
        replica_ax.step(
            ts, [s.replicas for s in result.samples], where="post", label=result.policy, linewidth=1
        )
    depth_ax.set_ylabel("waiting jobs")
    depth_ax.set_title(title, fontsize=9)
    depth_ax.legend(loc="upper right")
    depth_ax.grid(alpha=0.3)
    replica_ax.set_ylabel("replicas")
    replica_ax.set_xlabel("minutes")
    replica_ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, format="png")
