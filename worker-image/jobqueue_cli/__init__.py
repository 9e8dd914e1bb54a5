"""The `jobqueue` command line: the worker's commands plus the tools that need both halves.

The worker package must never import the operator (an import-linter contract),
yet `jobqueue simulate` drives the operator's own pure scaling policy. This
package sits above both and composes one command line, so neither half grows a
dependency on the other.
"""

from __future__ import annotations

from jobqueue_operator.simulator.cli import simulate
from jobqueue_worker.cli import app

app.command("simulate")(simulate)


def main() -> None:
    """Entry point of the `jobqueue` console script."""
    app()
