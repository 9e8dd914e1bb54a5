"""The ONLY part of the worker runtime that talks to Redis (a package of six modules).

``client.Broker`` serves the worker, the producers and the CLI (with
``browse.BrowseReads`` for the web UI and ``dispatch.DispatchCalls`` for the
worker's step and idle wait, which ``stepconn`` sends on connections of their
own); ``blocking.SyncBroker`` serves the lease-renewal thread; ``errors`` says
which failures are worth a retry.
"""

from __future__ import annotations

from jobqueue_worker.broker.blocking import SyncBroker
from jobqueue_worker.broker.client import Broker
from jobqueue_worker.broker.errors import TRANSIENT_ERRORS, describe_redis_error, is_transient
from jobqueue_worker.wire import DurabilityError, Fetched, FinishOp, NewJob

__all__ = [
    "TRANSIENT_ERRORS",
    "Broker",
    "DurabilityError",
    "Fetched",
    "FinishOp",
    "NewJob",
    "SyncBroker",
    "describe_redis_error",
    "is_transient",
]
