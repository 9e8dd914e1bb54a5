"""Bind the scaler's gRPC service, in plain text or TLS (optionally mutual).

KEDA's external trigger speaks plain gRPC unless ``enableTLS`` is set (or a CA
or client certificate is given through a TriggerAuthentication); with
``--tls-client-ca`` the scaler also demands KEDA's client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc

from jobqueue_operator.kedascaler.service import ScalerService, generic_handler

log = logging.getLogger("jobqueue_operator.kedascaler")
GRACE_S = 5.0


class ServerSetupError(Exception):
    """The server cannot start (unreadable certificate, port taken); one line."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        def read(path: Path, what: str) -> bytes:
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ServerSetupError(
                    f"cannot read the TLS {what} {path}: {exc.strerror}"
                ) from exc

        ca = read(self.client_ca, "client CA") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(read(self.key, "key"), read(self.cert, "certificate"))],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


async def start(
    service: ScalerService, listen: str, tls: TlsFiles | None
) -> tuple[grpc.aio.Server, int]:
    """A started server and the port it listens on (``listen`` may end in ``:0``)."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((generic_handler(service),))
    try:
        if tls is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, tls.credentials())
    except RuntimeError as exc:
        raise ServerSetupError(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise ServerSetupError(f"cannot listen on {listen}: the address is taken or invalid")
    await server.start()
    return server, port


async def serve(service: ScalerService, listen: str, tls: TlsFiles | None) -> None:
    """Serve until SIGTERM or SIGINT, then let running calls finish (briefly)."""
    server, port = await start(service, listen, tls)
    host = listen.rsplit(":", 1)[0]
    log.info(
        "keda-scaler listening on %s:%d (%s); Redis at %s",
        host,
        port,
        "TLS" if tls else "plain text",
        service.source.endpoint.display(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(GRACE_S)
        await service.source.close()
        log.info("keda-scaler stopped")
