"""The worker heartbeat: what a worker writes and the operator and CLI read.

Pure (no Redis client), so the worker can build one without importing the
statistics read. The worker that writes it and the readers that parse it share
this one definition, so they cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class ActiveJob:
    id: str
    type: str
    started_at: float  # epoch seconds


@dataclass(frozen=True)
class WorkerHeartbeat:
    worker_id: str
    state: str  # "idle" | "busy" | "draining"
    seen_at: float  # epoch seconds, Redis clock
    active_jobs: int
    jobs: tuple[ActiveJob, ...]
    started_at: float
    rss_bytes: int
    processed: int
    failed: int
    mean_processing_s: float
    pod_name: str | None
    # Cores the worker process (and its reaped children) used on average since
    # its previous heartbeat; None from a worker that does not report it, so the
    # operator's CPU trigger stays off instead of reading an old worker as idle.
    cpu_cores: float | None = None
    # Jobs this worker runs at once (JQW_CONCURRENCY); None from an older worker.
    # The operator's floor is the slots the running jobs fill, which needs it.
    concurrency: int | None = None
    # The worker's package version; None from an older worker. Shown by `jobqueue web`,
    # so a half-finished rollout is visible.
    version: str | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerHeartbeat | None:
        """None for anything malformed: one broken entry must not hide the others."""
        try:
            data = json.loads(raw)
            jobs = tuple(
                ActiveJob(id=str(j["id"]), type=str(j["type"]), started_at=float(j["started_at"]))
                for j in data.get("jobs", [])
            )
            pod = data.get("pod_name")
            cpu = data.get("cpu_cores")
            slots = data.get("concurrency")
            version = data.get("version")
            return cls(
                worker_id=str(data["worker_id"]),
                state=str(data["state"]),
                seen_at=float(data["seen_at"]),
                active_jobs=int(data.get("active_jobs", len(jobs))),
                jobs=jobs,
                started_at=float(data.get("started_at", 0.0)),
                rss_bytes=int(data.get("rss_bytes", 0)),
                processed=int(data.get("processed", 0)),
                failed=int(data.get("failed", 0)),
                mean_processing_s=float(data.get("mean_processing_s", 0.0)),
                pod_name=None if pod is None else str(pod),
                cpu_cores=None if cpu is None else float(cpu),
                concurrency=None if slots is None else int(slots),
                version=None if version is None else str(version),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def heartbeat_json(hb: WorkerHeartbeat) -> str:
    """The heartbeat as the worker sends it; ``seen_at`` is left out on purpose.

    The heartbeat script prepends ``"seen_at": <Redis TIME>`` so the stored
    timestamp is on Redis's clock.
    """
    return json.dumps(
        {
            "worker_id": hb.worker_id,
            "state": hb.state,
            "active_jobs": hb.active_jobs,
            "jobs": [{"id": j.id, "type": j.type, "started_at": j.started_at} for j in hb.jobs],
            "started_at": hb.started_at,
            "rss_bytes": hb.rss_bytes,
            "processed": hb.processed,
            "failed": hb.failed,
            "mean_processing_s": hb.mean_processing_s,
            "pod_name": hb.pod_name,
            "cpu_cores": hb.cpu_cores,
            "concurrency": hb.concurrency,
            "version": hb.version,
        },
        separators=(",", ":"),
    )
