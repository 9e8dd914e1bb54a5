"""``jobqueue_protocol.health`` is pure: importing it loads no I/O library.

The operator's pure modules (policy, status) and future callers may use it
without pulling in Redis or an event loop; checked in a fresh interpreter, since
this test process has long imported both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
WORKER_PATHS = ("worker-image", "worker-image/protocol")


def _loaded_after(module: str) -> set[str]:
    code = (
        f"import sys; import {module}; "
        "print(' '.join(m for m in ('redis', 'asyncio', 'socket', 'jobqueue_protocol.stats') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in WORKER_PATHS)},
    )
    return set(out.stdout.split())


def test_queue_health_imports_no_io_library() -> None:
    assert _loaded_after("jobqueue_protocol.health") == set()


def test_the_check_sees_an_io_import() -> None:
    """The probe itself: the Redis facts module does load redis."""
    assert "redis" in _loaded_after("jobqueue_protocol.redis_health")
