"""Redis in the shapes production runs it: TLS with client certificates, and Sentinel."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.redis_server import RedisServer
from jobqueue_devkit.redis_tls import TlsFiles, make_certs


@pytest.fixture(scope="module")
def tls_files() -> TlsFiles:
    return make_certs(Path(tempfile.mkdtemp(prefix="jq-redis-certs-")))


@pytest.fixture(scope="module")
def tls_redis(tls_files: TlsFiles) -> Iterator[RedisServer]:
    """A TLS-only redis-server (no plaintext port) that requires client certificates."""
    server = RedisServer(tls=tls_files)
    try:
        server.start()
    except DevkitError as exc:
        pytest.fail(f"TLS redis-server did not start: {exc}", pytrace=False)
    yield server
    server.cleanup()
