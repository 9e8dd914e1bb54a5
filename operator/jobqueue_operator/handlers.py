"""kopf glue, and the only module that imports kopf.

One daemon per JobQueue runs :class:`~jobqueue_operator.reconcile.Loop` at the
JobQueue's own polling interval. kopf starts a daemon when a JobQueue appears
(or at operator start for the existing ones) and stops it when the JobQueue is
deleted; the live ``body`` means a spec change is seen on the next tick.

Nothing kopf would write into ``status`` is used: the loop patches only the
fields the CRD declares, because the API server prunes every undeclared field
of a structural schema without an error. kopf's own Events from log lines are
off; the loop posts its own, one per scale and one per change of trouble.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from jobqueue_operator import admission, metrics, readiness
from jobqueue_operator.claims import Claim
from jobqueue_operator.defaults_source import DefaultsSource
from jobqueue_operator.kube import GROUP, PLURAL, VERSION, Kube
from jobqueue_operator.leader import LeaderElector
from jobqueue_operator.observe import RedisPools
from jobqueue_operator.pacing import lateness, next_poll_in, pause
from jobqueue_operator.parse import DEFAULT_INTERVAL_S
from jobqueue_operator.ports import KubeError
from jobqueue_operator.reconcile import Context, Loop
from jobqueue_operator.settings import OperatorSettings
from jobqueue_operator.status_writes import QueuedStatusWrites
from jobqueue_operator.targets import TargetKey
from jobqueue_protocol import logformat

FINALIZER = f"{GROUP}/finalizer"

_LOOPS: dict[str, Loop] = {}
#: The Lease's name, from the command line (``None``: no election, this replica acts).
_ELECTION: dict[str, str | None] = {"lease": None}
#: How often a standby's loop looks whether this replica has become the leader.
STANDBY_POLL_S = 0.5
#: At exit, how long the statuses not written yet may still take.
STATUS_FLUSH_S = 5.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Read our settings (a bad value stops the process here), then tune kopf."""
    config = OperatorSettings()
    # Our own Events only: kopf would otherwise post one per log line.
    settings.posting.enabled = False
    # Our group's names for kopf's bookkeeping, so its annotations say whose they are.
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
    kube = await Kube.connect()
    defaults = DefaultsSource(config)
    await defaults.refresh(kube)
    pools = memo["pools"] = RedisPools(config.redis_max_connections)
    memo["kube"] = kube
    writes = memo["status_writes"] = QueuedStatusWrites(
        kube.patch_status, in_flight=config.status_writes_in_flight
    )
    ctx = memo["ctx"] = Context(
        kube=kube,
        queues_for=pools.queues_for,
        settings=defaults.current,
        defaults_source=defaults.origin,
        status_writes=writes,
    )

    def apply_defaults(fresh: OperatorSettings, origin: str) -> None:
        ctx.settings, ctx.defaults_source = fresh, origin

    memo["defaults_task"] = asyncio.create_task(defaults.run(kube, apply_defaults))
    lease = _ELECTION["lease"]
    if lease:
        elector = LeaderElector(kube, config.lease_namespace, lease, _identity())
        await elector.step()  # act at once when the Lease is free
        memo["elector"] = elector
        memo["elector_task"] = asyncio.create_task(elector.run())
    if config.ready_port:
        memo["readiness"] = await readiness.serve(
            config.listen_addr, config.ready_port, lambda: _readiness(memo)
        )
    if config.webhook_port:
        settings.admission.server = _webhook_server(config)
        # kopf creates and keeps up to date a ValidatingWebhookConfiguration of this name.
        settings.admission.managed = GROUP
    if not lease:
        metrics.LEADER.set(1)  # standalone: this replica always acts
    metrics.serve(config.metrics_port)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Write the statuses still pending, then give up the lease, close the Redis pools
    and the API client. The statuses go first: written after the lease is free, they
    could land over what a standby that took it over has started to write."""
    for key in ("defaults_task", "elector_task"):
        task: asyncio.Task[None] | None = memo.get(key)
        if task is not None:
            task.cancel()
    writes: QueuedStatusWrites | None = memo.get("status_writes")
    if writes is not None:
        await writes.close(flush_s=STATUS_FLUSH_S)
    elector: LeaderElector | None = memo.get("elector")
    if elector is not None:
        await elector.release()
    runner = memo.get("readiness")
    if runner is not None:
        await runner.cleanup()
    pools: RedisPools | None = memo.get("pools")
    if pools is not None:
        await pools.close()
    kube: Kube | None = memo.get("kube")
    if kube is not None:
        await kube.close()


ClaimKey = tuple[str, str, str, str]  # (namespace, API group, kind, name)
ClaimIndex = kopf.Index[ClaimKey, Claim]


# A coroutine, so kopf calls it on the event loop: a plain function would take a
# trip through a thread pool for every JobQueue watch event (each status write).
@kopf.index(GROUP, VERSION, PLURAL)
async def jobqueue_claims(
    namespace: str | None, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[ClaimKey, Claim]:
    """Which target each JobQueue scales, kept in memory from kopf's watch.

    Conflict checks read this instead of listing every JobQueue from every loop,
    which cost N² list requests with N JobQueues.
    """
    target = admission.target_of(spec)
    if not namespace or target is None:
        return {}
    return {(namespace, *target.key): Claim(str(meta.get("creationTimestamp") or ""), name)}


def _claims_reader(*indices: ClaimIndex) -> Callable[[str, TargetKey], Iterable[Claim]]:
    def claims_on(namespace: str, target: TargetKey) -> Iterable[Claim]:
        key = (namespace, *target)
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
    elector: LeaderElector | None = memo.get("elector")
    loop: Loop | None = None
    due: float | None = None  # when the next poll should start
    # Every line this loop logs (ours and kopf's) carries the JobQueue as fields;
    # the daemon is its own task, so the binding stays with this JobQueue.
    try:
        with logformat.bound(jobqueue=name, namespace=namespace):
            while not stopped:
                if elector is not None and not elector.is_leader:
                    # A standby keeps nothing: on taking over it starts from the status
                    # the last leader wrote (cooldowns, pod selection). A decision made
                    # and not yet written still goes out, for that next leader.
                    if loop is not None:
                        _LOOPS.pop(loop.owner, None)
                        loop.close(keep_decision=True)
                        loop = None
                    due = None
                    await pause(STANDBY_POLL_S)
                    continue
                if loop is None:
                    loop = Loop(ctx, namespace, name, body.get("status") or {}, claims_on)
                    _LOOPS[loop.owner] = loop
                started = time.monotonic()
                late = lateness(due, started)
                if late is not None:
                    metrics.POLL_LATENESS.observe(late)
                try:
                    interval = await loop.tick(body)
                except Exception:  # a bug in one tick must not end the JobQueue's loop
                    logger.exception("Reconcile tick of JobQueue failed")
                    interval = DEFAULT_INTERVAL_S
                due = started + interval
                await pause(next_poll_in(interval, time.monotonic() - started))
    finally:
        if loop is not None:
            _LOOPS.pop(loop.owner, None)
            loop.close(keep_status=_operator_exiting(stopped))


def _operator_exiting(stopped: kopf.DaemonStopped) -> bool:
    reason = stopped.reason
    return reason is not None and bool(reason & kopf.DaemonStoppingReason.OPERATOR_EXITING)


async def refuse_a_claimed_target(
    *,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    warnings: list[str],
    **kwargs: Any,
) -> None:
    """Refuse a JobQueue whose target an HPA or another JobQueue already scales."""
    old: Mapping[str, Any] = kwargs.get("old") or {}
    new_spec = body.get("spec")
    target = admission.target_of(new_spec)
    if not namespace or not name or target is None:
        return
    if not admission.target_changed(kwargs.get("operation"), old.get("spec"), new_spec):
        return
    ctx: Context = memo["ctx"]
    index: ClaimIndex = kwargs["jobqueue_claims"]
    claims = index.get((namespace, *target.key), ())
    try:
        hpas = [hpa for hpa, on in await ctx.kube.hpa_targets(namespace) if on.key == target.key]
    except KubeError as exc:
        # Without the HPA list the run-time check still refuses to act; say so.
        warnings.append(f"could not check for an HPA on {target.describe()}: {exc}")
        hpas = []
    found = admission.claimed_by(name, target, (c.name for c in claims), hpas)
    if found is not None:
        raise kopf.AdmissionError(found, code=409)


class _WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, with a ``cryptography``-made certificate and,
    in a cluster, a ``service`` client config instead of a URL."""

    service: tuple[str, str] | None = None

    @staticmethod
    def build_certificate(
        hostnames: Collection[str], password: str | None = None
    ) -> tuple[bytes, bytes]:
        # Imported here: cryptography is needed only when the webhook makes its own
        # certificate, not to run the operator.
        from jobqueue_operator.webhook_certs import self_signed

        return self_signed(list(hostnames), datetime.now(UTC))

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for by_url in super().__call__(fn):
            if self.service is None:
                yield by_url
                continue
            namespace, service = self.service
            by_service = kopf.WebhookClientConfig(
                service={"namespace": namespace, "name": service, "port": self.port or 443}
            )
            if "caBundle" in by_url:
                by_service["caBundle"] = by_url["caBundle"]
            yield by_service


def _webhook_server(config: OperatorSettings) -> _WebhookServer:
    # A mounted certificate (one for every replica) wins; without one, self-signed.
    certs = Path(config.webhook_cert_dir) if config.webhook_cert_dir else None
    if certs is not None and not (certs / "tls.crt").exists():
        certs = None
    host = config.webhook_host
    extra: list[str] = []
    if config.webhook_service:
        namespace, _, service = config.webhook_service.rpartition("/")
        extra = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
        host = host or extra[0]
    server = _WebhookServer(
        addr=config.listen_addr,
        port=config.webhook_port,
        host=host,
        extra_sans=extra,
        certfile=str(certs / "tls.crt") if certs else None,
        pkeyfile=str(certs / "tls.key") if certs else None,
        cafile=str(certs / "ca.crt") if certs and (certs / "ca.crt").exists() else None,
    )
    if config.webhook_service:
        namespace, _, service = config.webhook_service.rpartition("/")
        server.service = (namespace or "default", service)
    return server


@kopf.on.probe(id="jobqueues")
def running_loops(**_: Any) -> int:
    """Liveness detail: how many JobQueue loops act in this process (0 on a standby)."""
    return len(_LOOPS)


@kopf.on.probe(id="leader")
def leading(memo: kopf.Memo, **_: Any) -> bool:
    """Liveness detail: whether this replica holds the Lease (always, without election)."""
    elector: LeaderElector | None = memo.get("elector")
    return elector is None or elector.is_leader


def _readiness(memo: kopf.Memo) -> dict[str, object]:
    elector: LeaderElector | None = memo.get("elector")
    return {
        "ready": "ctx" in memo,
        "leader": elector is None or elector.is_leader,
        "jobqueues": len(_LOOPS),
    }


def _identity() -> str:
    """This replica's name in the Lease: the Pod name (hostname) plus a random suffix,
    so a restarted container never mistakes its predecessor's record for its own."""
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


def run(
    *,
    lease: str | None,
    namespaces: Sequence[str],
    liveness: str | None,
    verbose: bool,
    log_format: str = "text",
) -> None:
    """Run kopf with these handlers until SIGTERM/SIGINT (``cli.main`` parses the flags).

    ``lease``: the name of the leader-election Lease; ``None`` acts alone.
    """
    _ELECTION["lease"] = lease
    # kopf sets the levels and quiets asyncio; our formatter then writes every
    # line (kopf's too) as JSON or text with the JobQueue as fields, secrets masked.
    kopf.configure(verbose=verbose)
    logformat.setup(log_format, logging.DEBUG if verbose else logging.INFO)
    if OperatorSettings().webhook_port:
        # Registered only with a port: kopf refuses to start with admission
        # handlers and no server to serve them.
        kopf.on.validate(
            GROUP,
            VERSION,
            PLURAL,
            id="scale-target",
            operations=["CREATE", "UPDATE"],
            # Kept when a replica stops (another may still serve it); when none
            # serves, the scale loop's run-time check still refuses to act.
            persistent=True,
            ignore_failures=True,
        )(refuse_a_claimed_target)
    # kopf at INFO reports every handled watch event; keep ours and its warnings.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)
    tune_garbage_collector()
    asyncio.run(
        kopf.operator(
            # kopf's own peering is off: the Lease elects the replica that acts.
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness or None,
        )
    )


#: Allocations between two young collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Fewer, larger young collections, and the start-up objects set aside.

    At 1,000 JobQueues a poll allocates ~2,000 objects (the kopf body views,
    the status model, the stats replies), and many of them live a few polls
    (a status waits up to 30 s to be compared): with Python's default of a
    young collection every 700 allocations they were promoted to the oldest
    generation, whose full collections then ran every few seconds over the
    whole heap. Measured with ``gc.callbacks`` at 1,000 JobQueues: 22 % of the
    operator's CPU went to the collector, 3 % with a young threshold of 50,000.
    ``freeze`` moves what exists now (modules, classes, schemas) out of every later
    collection's way. Reference counting still frees nearly everything at once;
    only cyclic garbage waits a little longer.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
