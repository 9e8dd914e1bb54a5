"""The scaler's real gRPC server on a free loopback port, over the run's real Redis."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from jobqueue_operator.kedascaler.cli import redis_endpoint
from jobqueue_operator.kedascaler.server import start
from jobqueue_operator.kedascaler.service import RedisSource, ScalerService

# --import-mode=importlib puts no test folder on sys.path; the tests share scaler_client.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaler_client import ScalerClient


@pytest.fixture
async def scaler(redis_url: str) -> AsyncIterator[ScalerClient]:
    service = ScalerService(
        RedisSource(redis_endpoint(redis_url, timeout_s=1.0)), stream_interval_s=0.2
    )
    server, port = await start(service, "127.0.0.1:0", None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ScalerClient(channel)
    finally:
        await channel.close()
        await server.stop(None)
        await service.source.close()
