"""Clients for a :class:`~jobqueue_protocol.redis_url.RedisTarget`: direct, TLS or Sentinel.

The one place where a target becomes a redis-py client, for both sides (the
worker's broker and the operator's observe module call it), so Sentinel and TLS
behave the same everywhere.

Cluster: the client is a ``RedisCluster`` typed as a ``Redis``: callers use only
what both offer (single-slot commands and scripts, non-transactional pipelines,
which the cluster client splits per node). Every key of a queue shares one hash
tag, so each script call stays in one slot.

Sentinel: the client is ``Sentinel.master_for``; every new connection asks the
sentinels where the master is, and a connection that meets ``READONLY`` (it
reached a demoted master) is dropped, so callers follow a failover by retrying,
never by restarting.

TLS: a CA bundle and a client certificate, as files or PEM text. redis-py loads
certificates only from files, so PEM text (from a Kubernetes Secret) is written
once to a private directory, named by its hash. ``server_name`` is the name the
server certificate is checked against (SNI too) when it differs from the address
dialled; redis-py has no option for it, hence the two small connection classes.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from jobqueue_protocol.redis_url import RedisTarget, TlsOptions

#: The private directory (mode 0700) for PEM text turned into files; made on first use.
_PEM_DIRS: list[Path] = []


def _pem_file(text: str, suffix: str) -> str:
    if not _PEM_DIRS:
        _PEM_DIRS.append(Path(tempfile.mkdtemp(prefix="jq-redis-tls-")))
    path = _PEM_DIRS[0] / (hashlib.sha256(text.encode()).hexdigest()[:24] + suffix)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    return str(path)


def _ssl_kwargs(tls: TlsOptions) -> dict[str, Any]:
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE,
        "ssl_check_hostname": tls.verify,
        "ssl_ca_certs": tls.ca_file,
        "ssl_ca_data": tls.ca_pem,
        "ssl_certfile": _pem_file(tls.cert_pem, ".crt") if tls.cert_pem else tls.cert_file,
        "ssl_keyfile": _pem_file(tls.key_pem, ".key") if tls.key_pem else tls.key_file,
    }


class _AsyncServerName:
    """For async TLS connections: check the certificate against ``ssl_server_name``."""

    _server_name: str | None

    def __init__(self, *, ssl_server_name: str | None = None, **kwargs: Any) -> None:
        self._server_name = ssl_server_name
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Any:
        args = dict(super()._connection_arguments())  # type: ignore[misc]
        if self._server_name:
            args["server_hostname"] = self._server_name
        return args


class _AsyncNamedSSL(_AsyncServerName, redis.asyncio.SSLConnection):
    pass


class _AsyncSentinelNamedSSL(_AsyncServerName, redis.asyncio.sentinel.SentinelManagedSSLConnection):
    """The same for a connection whose address the sentinels give."""


class _SyncServerName:
    """For blocking TLS connections: check the certificate against ``ssl_server_name``."""

    _server_name: str | None
    host: str

    def __init__(self, *, ssl_server_name: str | None = None, **kwargs: Any) -> None:
        self._server_name = ssl_server_name
        super().__init__(**kwargs)

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        # redis-py passes self.host as the TLS server name; swap it for the wrap only.
        if not self._server_name:
            return super()._wrap_socket_with_ssl(sock)  # type: ignore[misc]
        dialled, self.host = self.host, self._server_name
        try:
            return super()._wrap_socket_with_ssl(sock)  # type: ignore[misc]
        finally:
            self.host = dialled


class _SyncNamedSSL(_SyncServerName, redis.SSLConnection):
    pass


class _SyncSentinelNamedSSL(_SyncServerName, redis.sentinel.SentinelManagedSSLConnection):
    pass


def _common(target: RedisTarget, options: dict[str, Any]) -> dict[str, Any]:
    kwargs = {"db": target.db, "username": target.username, "password": target.password}
    kwargs.update(options)
    if target.tls is not None:
        kwargs.update(_ssl_kwargs(target.tls), ssl_server_name=target.tls.server_name)
    return kwargs


def _sentinel_kwargs(target: RedisTarget, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        "socket_timeout": options.get("socket_timeout"),
        "socket_connect_timeout": options.get("socket_connect_timeout"),
    }
    if target.tls is not None:
        kwargs.update(_ssl_kwargs(target.tls), ssl=True)
    return kwargs


def _sentinel_master(
    sentinel_class: Any,
    named_ssl: type,
    target: RedisTarget,
    options: dict[str, Any],
    kwargs: dict[str, Any],
) -> Any:
    """The client of the master the Sentinels name, for asyncio's or the blocking redis-py.

    The two differ only in their classes: the Sentinel, and the TLS connection that
    checks the certificate against ``ssl_server_name``. Without TLS that option is
    dropped, as no other connection class takes it.
    """
    sentinel = sentinel_class(target.hosts, sentinel_kwargs=_sentinel_kwargs(target, options))
    if target.tls is not None:
        kwargs["connection_class"] = named_ssl
    else:
        kwargs.pop("ssl_server_name", None)
    return sentinel.master_for(target.master_name or "", **kwargs)


def async_client(
    target: RedisTarget, *, blocking_pool: bool = False, **options: Any
) -> redis.asyncio.Redis:
    """An asyncio client for ``target``; ``options`` are redis-py connection options.

    ``blocking_pool`` (direct targets): a command waits up to ``timeout`` for a
    free connection instead of failing when ``max_connections`` are busy.
    """
    kwargs = _common(target, options)
    if target.mode == "cluster":
        return cast(redis.asyncio.Redis, _async_cluster(target, kwargs))
    if target.mode == "sentinel":
        kwargs.pop("timeout", None)
        kwargs.pop("max_connections", None)
        client = _sentinel_master(
            redis.asyncio.sentinel.Sentinel, _AsyncSentinelNamedSSL, target, options, kwargs
        )
        return cast(redis.asyncio.Redis, client)
    pool_class = (
        redis.asyncio.BlockingConnectionPool if blocking_pool else redis.asyncio.ConnectionPool
    )
    if not blocking_pool:
        kwargs.pop("timeout", None)
    if target.unix_path is not None:
        kwargs.update(connection_class=redis.asyncio.UnixDomainSocketConnection)
        kwargs["path"] = target.unix_path
    else:
        kwargs.update(host=target.hosts[0][0], port=target.hosts[0][1])
        if target.tls is not None:
            kwargs["connection_class"] = _AsyncNamedSSL
    return redis.asyncio.Redis.from_pool(pool_class(**kwargs))


def sync_client(target: RedisTarget, **options: Any) -> redis.Redis:
    """A blocking client for ``target`` (lease renewal thread, sync producer)."""
    kwargs = _common(target, options)
    if target.mode == "cluster":
        return cast(redis.Redis, _sync_cluster(target, kwargs))
    if target.mode == "sentinel":
        client = _sentinel_master(
            redis.sentinel.Sentinel, _SyncSentinelNamedSSL, target, options, kwargs
        )
        return cast(redis.Redis, client)
    if target.unix_path is not None:
        kwargs.update(connection_class=redis.UnixDomainSocketConnection, path=target.unix_path)
    else:
        kwargs.update(host=target.hosts[0][0], port=target.hosts[0][1])
        if target.tls is not None:
            kwargs["connection_class"] = _SyncNamedSSL
    return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))


def _cluster_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    # A cluster has no db, no pool timeout; TLS is a flag plus the ssl_* options.
    out = {k: v for k, v in kwargs.items() if k not in ("db", "timeout", "ssl_server_name")}
    if "ssl_cert_reqs" in out:
        out["ssl"] = True
    return out


def _async_cluster(target: RedisTarget, kwargs: dict[str, Any]) -> redis.asyncio.RedisCluster:
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.hosts]
    return redis.asyncio.RedisCluster(startup_nodes=nodes, **_cluster_kwargs(kwargs))


def _sync_cluster(target: RedisTarget, kwargs: dict[str, Any]) -> redis.cluster.RedisCluster:
    nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.hosts]  # type: ignore[no-untyped-call]
    return redis.cluster.RedisCluster(startup_nodes=nodes, **_cluster_kwargs(kwargs))


class SlotClients:
    """Plain clients to the master holding a key's slot, for what a cluster client cannot do.

    A cluster pipeline offers no MULTI/EXEC and does not promise that a ``WAIT``
    travels on the connection that carried the writes; a plain client to the
    slot's master does both. ``refresh()`` after an error makes the next call
    re-read the slot map (a failover moved the slot).
    """

    def __init__(
        self, cluster: redis.asyncio.RedisCluster, target: RedisTarget, **options: Any
    ) -> None:
        self._cluster = cluster
        self._target = target
        self._options = options
        self._clients: dict[str, redis.asyncio.Redis] = {}

    async def for_key(self, key: str) -> redis.asyncio.Redis:
        await self._cluster.initialize()
        node = self._cluster.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.ConnectionError(f"no cluster node serves the slot of {key}")
        found = self._clients.get(node.name)
        if found is None:
            direct = replace(self._target, mode="direct", hosts=((node.host, int(node.port)),))
            found = self._clients[node.name] = async_client(direct, **self._options)
        return found

    async def refresh(self) -> None:
        await self._cluster.nodes_manager.initialize()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
