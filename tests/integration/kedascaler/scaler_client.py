"""A real gRPC client of KEDA's external-scaler API, as KEDA's operator calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import grpc

from jobqueue_operator.kedascaler import externalscaler_pb2 as pb

PREFIX = "/externalscaler.ExternalScaler/"


@dataclass
class ScalerClient:
    channel: grpc.aio.Channel
    name: str = "worker"
    namespace: str = "demo"

    def ref(self, metadata: Mapping[str, str]) -> pb.ScaledObjectRef:
        return pb.ScaledObjectRef(
            name=self.name, namespace=self.namespace, scalerMetadata=dict(metadata)
        )

    async def is_active(self, metadata: Mapping[str, str]) -> bool:
        call = self.channel.unary_unary(
            PREFIX + "IsActive",
            request_serializer=pb.ScaledObjectRef.SerializeToString,
            response_deserializer=pb.IsActiveResponse.FromString,
        )
        response: pb.IsActiveResponse = await call(self.ref(metadata), timeout=10)
        return response.result

    async def metric_spec(self, metadata: Mapping[str, str]) -> list[tuple[str, float]]:
        call = self.channel.unary_unary(
            PREFIX + "GetMetricSpec",
            request_serializer=pb.ScaledObjectRef.SerializeToString,
            response_deserializer=pb.GetMetricSpecResponse.FromString,
        )
        response: pb.GetMetricSpecResponse = await call(self.ref(metadata), timeout=10)
        return [(s.metricName, s.targetSizeFloat) for s in response.metricSpecs]

    async def metrics(self, metadata: Mapping[str, str], metric: str) -> list[tuple[str, float]]:
        call = self.channel.unary_unary(
            PREFIX + "GetMetrics",
            request_serializer=pb.GetMetricsRequest.SerializeToString,
            response_deserializer=pb.GetMetricsResponse.FromString,
        )
        request = pb.GetMetricsRequest(scaledObjectRef=self.ref(metadata), metricName=metric)
        response: pb.GetMetricsResponse = await call(request, timeout=10)
        return [(v.metricName, v.metricValueFloat) for v in response.metricValues]

    def stream_is_active(self, metadata: Mapping[str, str]) -> AsyncIterator[bool]:
        call = self.channel.unary_stream(
            PREFIX + "StreamIsActive",
            request_serializer=pb.ScaledObjectRef.SerializeToString,
            response_deserializer=pb.IsActiveResponse.FromString,
        )
        stream = call(self.ref(metadata), timeout=60)

        async def results() -> AsyncIterator[bool]:
            async for response in stream:
                yield response.result

        return results()
