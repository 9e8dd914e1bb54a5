"""The observability tests share ``observability_helpers`` (pytest's importlib mode
puts no test folder on sys.path, so this one goes on it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
