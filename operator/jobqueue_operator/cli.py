"""``jobqueue-operator``: run the operator.

Single writer per JobQueue: by default the replicas elect a leader through a
``coordination.k8s.io/v1`` Lease (``--lease jobqueue-operator`` in
``JQO_LEASE_NAMESPACE``); only the leader acts, the others stand by and serve
the admission webhook. ``--standalone`` skips the election (one replica, or
tests). See ``docs/operator.md``, "High availability".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobqueue_operator import handlers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; every option also has a sensible default for a pod."""
    parser = argparse.ArgumentParser(prog="jobqueue-operator", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone", action="store_true", help="no leader election: this process always acts"
    )
    mode.add_argument(
        "--lease",
        default="jobqueue-operator",
        help="name of the leader-election Lease; replicas with the same Lease elect one writer",
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
        help="kopf liveness endpoint URL ('' to disable); readiness is JQO_READY_PORT's /readyz",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parse_args(argv)
    try:
        handlers.run(
            lease=None if args.standalone else args.lease,
            namespaces=args.namespace,
            liveness=args.liveness,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
