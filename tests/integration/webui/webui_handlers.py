"""Job types for the web UI's browser test, loaded by a real worker process.

``flaky`` fails with a traceback until the file named by ``WEBUI_FIXED_FILE``
exists: the test "fixes the handler" by creating it, then replays from the DLQ.
"""

from __future__ import annotations

import os
from typing import Any

from jobqueue_worker.errors import PermanentError
from jobqueue_worker.registry import Job, Registry

registry = Registry()


class ChargeDeclinedError(PermanentError):
    pass


def _check_card(card: str) -> None:
    if not os.path.exists(os.environ["WEBUI_FIXED_FILE"]):
        raise ChargeDeclinedError(f"card {card} declined by the old handler")


@registry.job_type("flaky")
async def flaky(job: Job) -> dict[str, Any]:
    payload = job.payload if isinstance(job.payload, dict) else {}
    _check_card(str(payload.get("card", "?")))
    return {"charged": payload.get("amount", 0)}


@registry.job_type("ok")
async def ok(job: Job) -> str:
    return "fine"
