"""``jobqueue-operator``: run the operator.

Single writer per JobQueue: by default the operator runs with kopf peering
(``--peering jobqueue-operator``) and a random priority, so among several
replicas exactly one (the highest priority) acts and the others stand by until
its peering record expires. ``--standalone`` skips peering (one replica, or tests).
See ``docs/operator.md``, "High availability".
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from importlib import metadata

from jobqueue_operator import handlers

DISTRIBUTION = "jobqueue-operator"


def installed_version() -> str:
    """The installed distribution's version, or "unknown" when run from a bare source tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; every option also has a sensible default for a pod."""
    parser = argparse.ArgumentParser(prog="jobqueue-operator", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"jobqueue-operator {installed_version()}"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone", action="store_true", help="no peering: this process always acts"
    )
    mode.add_argument(
        "--peering",
        default="jobqueue-operator",
        help="kopf peering name; replicas with the same name elect one active writer",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority (default: random, so replicas never tie)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="kopf liveness/readiness endpoint URL ('' to disable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parse_args(argv)
    priority = (
        args.priority if args.priority is not None else random.SystemRandom().randrange(1, 2**31)
    )
    try:
        handlers.run(
            standalone=args.standalone,
            peering=args.peering,
            priority=priority,
            namespaces=args.namespace,
            liveness=args.liveness,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
