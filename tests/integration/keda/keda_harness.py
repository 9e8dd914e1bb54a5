"""What the real-KEDA tests share besides fixtures."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ScalerProcess:
    """`jobqueue-operator keda-scaler` on a loopback port, as KEDA's external trigger dials it."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
