"""The gRPC service KEDA calls: IsActive, StreamIsActive, GetMetricSpec, GetMetrics.

Every call parses the trigger metadata, polls Redis once through
``jobqueue_operator.observe`` and answers. A failure is a gRPC status with a
one-line message, never a crash and never a made-up number: bad metadata or an
unknown queue is INVALID_ARGUMENT, an unreachable Redis is UNAVAILABLE. A 0
while Redis is down would tell the HPA the queue is empty and scale the
workers away mid-job; an error makes KEDA hold (or use its fallback).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc

from jobqueue_operator import observe
from jobqueue_operator.kedascaler import answers
from jobqueue_operator.kedascaler import externalscaler_pb2 as pb
from jobqueue_operator.kedascaler.metadata import BadMetadataError, Trigger, parse
from jobqueue_operator.observation import Observation
from jobqueue_operator.ports import MetricsUnavailableError
from jobqueue_operator.queue_summary import summarise
from jobqueue_operator.redis_endpoint import Endpoint

log = logging.getLogger("jobqueue_operator.kedascaler")

SERVICE_NAME = "externalscaler.ExternalScaler"
Context = grpc.aio.ServicerContext[Any, Any]
#: Policy state not asked about for this long (seconds) belongs to a deleted ScaledObject.
STATE_TTL_S = 3600.0
POOL_OWNER = "keda-scaler"


class UnknownQueueError(Exception):
    """A queue Redis knows nothing about: never enqueued to, no worker serves it."""


@dataclass
class RedisSource:
    """The one Redis endpoint this scaler reads, through the operator's pools."""

    endpoint: Endpoint
    pools: observe.RedisPools = field(default_factory=observe.RedisPools)

    async def poll(self, queues: tuple[str, ...]) -> Observation:
        """One round trip for all of ``queues``; raises on an unknown queue or a Redis error."""
        client = self.pools.client(POOL_OWNER, self.endpoint)
        obs, stats = await observe.read(
            client, list(queues), display=self.endpoint.display(), timeout_s=self.endpoint.timeout_s
        )
        for queue, queue_stats in stats.items():
            seen = summarise({queue: queue_stats})
            enqueued = seen.counters.enqueued if seen.counters is not None else 0
            if not (enqueued or seen.workers or seen.depth or seen.in_flight or seen.delayed):
                raise UnknownQueueError(
                    f"queue {queue!r} is unknown to Redis at {self.endpoint.display()}: "
                    "no job was ever enqueued to it and no worker serves it"
                )
        return obs

    async def close(self) -> None:
        await self.pools.close()


@dataclass
class ScalerService:
    """The four RPCs, over one :class:`RedisSource`."""

    source: RedisSource
    stream_interval_s: float = 5.0
    clock: Callable[[], float] = time.time
    _states: dict[tuple[str, str, str], tuple[float, answers.PolicyState]] = field(
        default_factory=dict
    )

    async def is_active(self, request: pb.ScaledObjectRef, context: Context) -> pb.IsActiveResponse:
        trigger, obs, state = await self._poll(request, context)
        return pb.IsActiveResponse(result=answers.is_active(trigger, obs, state, self.clock()))

    async def stream_is_active(
        self, request: pb.ScaledObjectRef, context: Context
    ) -> AsyncIterator[pb.IsActiveResponse]:
        """Send the activity now and again whenever it changes (KEDA's external-push)."""
        previous: bool | None = None
        while True:
            trigger, obs, state = await self._poll(request, context)
            active = answers.is_active(trigger, obs, state, self.clock())
            if active != previous:
                yield pb.IsActiveResponse(result=active)
                previous = active
            await asyncio.sleep(self.stream_interval_s)

    async def get_metric_spec(
        self, request: pb.ScaledObjectRef, context: Context
    ) -> pb.GetMetricSpecResponse:
        # No Redis read: the spec depends on the metadata only, and KEDA builds the HPA
        # from it, so a Redis outage must not leave the HPA without its metric.
        trigger = await self._trigger(request, context)
        target = trigger.target
        spec = pb.MetricSpec(
            metricName=trigger.metric_name, targetSize=max(1, round(target)), targetSizeFloat=target
        )
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    async def get_metrics(
        self, request: pb.GetMetricsRequest, context: Context
    ) -> pb.GetMetricsResponse:
        ref = request.scaledObjectRef
        trigger = await self._trigger(ref, context)
        if request.metricName and request.metricName != trigger.metric_name:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                _named(
                    ref,
                    f"metric {request.metricName!r} is not served for this trigger; "
                    f"its metric is {trigger.metric_name!r}",
                ),
            )
        trigger, obs, state = await self._poll(ref, context)
        value = answers.metric_value(trigger, obs, state, self.clock())
        metric = pb.MetricValue(
            metricName=trigger.metric_name, metricValue=round(value), metricValueFloat=value
        )
        return pb.GetMetricsResponse(metricValues=[metric])

    async def _trigger(self, ref: pb.ScaledObjectRef, context: Context) -> Trigger:
        try:
            return parse(dict(ref.scalerMetadata))
        except BadMetadataError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, _named(ref, str(exc)))

    async def _poll(
        self, ref: pb.ScaledObjectRef, context: Context
    ) -> tuple[Trigger, Observation, answers.PolicyState]:
        trigger = await self._trigger(ref, context)
        try:
            obs = await self.source.poll(trigger.queues)
        except UnknownQueueError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, _named(ref, str(exc)))
        except MetricsUnavailableError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, _named(ref, str(exc)))
        return trigger, obs, self._state(ref, trigger)

    def _state(self, ref: pb.ScaledObjectRef, trigger: Trigger) -> answers.PolicyState:
        now = time.monotonic()
        for key in [k for k, (used, _) in self._states.items() if now - used > STATE_TTL_S]:
            del self._states[key]
        key = (ref.namespace, ref.name, trigger.metric_name)
        _, state = self._states.get(key, (now, answers.PolicyState()))
        self._states[key] = (now, state)
        return state


def _named(ref: pb.ScaledObjectRef, message: str) -> str:
    who = f"{ref.namespace}/{ref.name}" if ref.name else "a request without a ScaledObject name"
    return f"{who}: {message}"


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    log.warning("keda-scaler: %s: %s", code.name, message)
    await context.abort(code, message)
    raise AssertionError("context.abort raises")  # for the type checker


def generic_handler(service: ScalerService) -> grpc.GenericRpcHandler:
    """The service as gRPC method handlers, with the proto's (de)serialisers."""
    scaled_ref = pb.ScaledObjectRef.FromString
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "IsActive": grpc.unary_unary_rpc_method_handler(
            service.is_active,
            request_deserializer=scaled_ref,
            response_serializer=pb.IsActiveResponse.SerializeToString,
        ),
        "StreamIsActive": grpc.unary_stream_rpc_method_handler(
            service.stream_is_active,
            request_deserializer=scaled_ref,
            response_serializer=pb.IsActiveResponse.SerializeToString,
        ),
        "GetMetricSpec": grpc.unary_unary_rpc_method_handler(
            service.get_metric_spec,
            request_deserializer=scaled_ref,
            response_serializer=pb.GetMetricSpecResponse.SerializeToString,
        ),
        "GetMetrics": grpc.unary_unary_rpc_method_handler(
            service.get_metrics,
            request_deserializer=pb.GetMetricsRequest.FromString,
            response_serializer=pb.GetMetricsResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
