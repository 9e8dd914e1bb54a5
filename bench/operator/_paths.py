"""Make the repository's source trees importable without installing them.

``jobqueue_devkit`` is never installed (it must not end up in a wheel), and a
fresh clone may not have the project installed in editable mode either, so the
benchmark puts the three source roots on ``sys.path`` itself. Imported first by
``__main__`` for its side effect.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

for _sub in ("tests/devkit", "worker-image", "worker-image/protocol", "operator"):
    _path = str(REPO_ROOT / _sub)
    if _path not in sys.path:
        sys.path.append(_path)
