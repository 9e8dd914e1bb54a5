"""kopf glue, and the only module that imports kopf.

One daemon per JobQueue runs :class:`~jobqueue_operator.reconcile.Loop` at the
JobQueue's own polling interval. kopf starts a daemon when a JobQueue appears
(or at operator start for the existing ones) and stops it when the JobQueue is
deleted; the live ``body`` means a spec change is seen on the next tick.

Nothing kopf would write into ``status`` is used: the loop patches only the
fields the CRD declares (``style.md`` §6). kopf's own Events from log lines are
off; the loop posts its own, one per scale and one per change of trouble.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import kopf

from jobqueue_operator import metrics
from jobqueue_operator.kube import GROUP, PLURAL, VERSION, Kube
from jobqueue_operator.observe import RedisPools
from jobqueue_operator.reconcile import DEFAULT_INTERVAL_S, Claim, Context, Loop
from jobqueue_operator.settings import OperatorSettings
from jobqueue_protocol import logformat

FINALIZER = f"{GROUP}/finalizer"

_LOOPS: dict[str, Loop] = {}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Read our settings (a bad value stops the process here), then tune kopf."""
    config = OperatorSettings()
    # Our own Events only: kopf would otherwise post one per log line.
    settings.posting.enabled = False
    # Our group's names for kopf's bookkeeping, as crate-operator does.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Restart watches regularly so a silently dead connection cannot go unnoticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 30
    memo["ctx"] = Context(
        kube=await Kube.connect(),
        pools=RedisPools(config.redis_max_connections),
        settings=config,
    )
    metrics.serve(config.metrics_port)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Close the Redis pools and the API client."""
    ctx: Context | None = memo.get("ctx")
    if ctx is not None:
        await ctx.pools.close()
        await ctx.kube.close()


TargetKey = tuple[str, str]  # (namespace, Deployment name)
ClaimIndex = kopf.Index[TargetKey, Claim]


@kopf.index(GROUP, VERSION, PLURAL)
def jobqueue_claims(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[TargetKey, Claim]:
    """Which Deployment each JobQueue scales, kept in memory from kopf's watch.

    Conflict checks read this instead of listing every JobQueue from every loop,
    which cost N² list requests with N JobQueues.
    """
    target = (spec.get("scaleTargetRef") or {}).get("name")
    if not namespace or not isinstance(target, str) or not target:
        return {}
    return {(namespace, target): Claim(str(meta.get("creationTimestamp") or ""), name)}


def _claims_reader(*indices: ClaimIndex) -> Callable[[str, str], Iterable[Claim]]:
    def claims_on(namespace: str, target: str) -> Iterable[Claim]:
        key = (namespace, target)
        return [claim for index in indices for claim in index.get(key, ())]

    return claims_on


@kopf.daemon(GROUP, VERSION, PLURAL, id="scale-loop", cancellation_timeout=10.0)
async def scale_loop(
    *,
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **indices: Any,
) -> None:
    """parse → observe → decide → act → report, every pollingIntervalSeconds, until deleted."""
    ctx: Context = memo["ctx"]
    if namespace is None:  # JobQueue is namespaced; kopf types the kwarg for both scopes
        raise kopf.PermanentError("a JobQueue without a namespace")
    # kopf passes each index as a keyword named after its function.
    claims_on = _claims_reader(indices["jobqueue_claims"])
    loop = Loop.from_status(ctx, namespace, name, body.get("status") or {}, claims_on)
    _LOOPS[loop.owner] = loop
    # Every line this loop logs (ours and kopf's) carries the JobQueue as fields;
    # the daemon is its own task, so the binding stays with this JobQueue.
    try:
        with logformat.bound(jobqueue=name, namespace=namespace):
            while not stopped:
                try:
                    interval = await loop.tick(body)
                except Exception:  # a bug in one tick must not end the JobQueue's loop
                    logger.exception("Reconcile tick of JobQueue failed")
                    interval = DEFAULT_INTERVAL_S
                await stopped.wait(interval)
    finally:
        _LOOPS.pop(loop.owner, None)
        loop.close()


@kopf.on.probe(id="jobqueues")
def running_loops(**_: Any) -> int:
    """Liveness/readiness detail: how many JobQueue loops run in this process."""
    return len(_LOOPS)


def run(
    *,
    standalone: bool,
    peering: str | None,
    priority: int,
    namespaces: Sequence[str],
    liveness: str | None,
    verbose: bool,
    log_format: str = "text",
) -> None:
    """Run kopf with these handlers until SIGTERM/SIGINT (``cli.main`` parses the flags)."""
    # kopf sets the levels and quiets asyncio; our formatter then writes every
    # line (kopf's too) as JSON or text with the JobQueue as fields, secrets masked.
    kopf.configure(verbose=verbose)
    logformat.setup(log_format, logging.DEBUG if verbose else logging.INFO)
    # kopf at INFO reports every handled watch event; keep ours and its warnings.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    asyncio.run(
        kopf.operator(
            standalone=standalone,
            peering_name=None if standalone else peering,
            priority=priority,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness or None,
        )
    )
