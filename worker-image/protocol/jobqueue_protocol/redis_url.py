"""Where Redis is, as one value both sides understand: parsing a Redis URL into a target.

One grammar for the worker, the producer, the CLI and the operator, so a URL that
works for one works for all of them:

* ``redis://[user[:password]@]host[:port][/db]`` and ``rediss://`` (TLS);
* ``unix:///path/to/redis.sock[?db=N]``;
* ``redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]`` and
  ``rediss+sentinel://`` (TLS to the sentinels and to the data nodes): the hosts are
  the *sentinels*; ``master`` is the monitored name. Clients ask the sentinels for the
  current master on every (re)connect, so a failover needs no restart.
* ``redis+cluster://host:port[,host:port...]`` and ``rediss+cluster://``: a Redis
  Cluster; the hosts are seed nodes (any few), the client learns the slot map
  from them and follows it through failovers and resharding. Database 0 only.

Query parameters (all optional): ``sentinel_username`` and ``sentinel_password``
(sentinels protected with their own ``requirepass``/ACL); for TLS schemes
``ssl_ca_certs`` (CA bundle file), ``ssl_certfile`` and ``ssl_keyfile`` (client
certificate), ``ssl_server_name`` (the name the server's certificate must carry
when it differs from the address dialled, e.g. an IP) and ``ssl_cert_reqs=none``
(no verification: for tests only). Anything else is refused by name, so a typo
cannot silently turn verification off.

Parsing is pure (no I/O, no redis import): settings and CLI validation use it
without a connection library; :mod:`jobqueue_protocol.redis_connect` builds clients.
Errors never echo the URL (it may carry a password).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
_SCHEME_LIST = (
    "redis://, rediss://, unix://, redis+sentinel://, redis+cluster:// or their rediss forms"
)
_TLS_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_server_name", "ssl_cert_reqs")
_PARAMS = ("db", "sentinel_username", "sentinel_password", *_TLS_PARAMS)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS towards Redis. PEM text (from a Kubernetes Secret) or file paths, not both."""

    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    cert_file: str | None = None
    cert_pem: str | None = field(default=None, repr=False)
    key_file: str | None = None
    key_pem: str | None = field(default=None, repr=False)
    server_name: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis address. Credentials are kept but never shown by ``display``."""

    mode: Literal["direct", "sentinel", "cluster"]
    #: direct: the one server; sentinel: the sentinels; cluster: seed nodes.
    hosts: tuple[tuple[str, int], ...] = ()
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    master_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    tls: TlsOptions | None = None

    def display(self) -> str:
        """The address for logs, errors and status: never a credential."""
        if self.unix_path is not None:
            return f"unix://{self.unix_path}?db={self.db}"
        where = ",".join(f"{h}:{p}" for h, p in self.hosts)
        scheme = "rediss" if self.tls is not None else "redis"
        if self.mode == "sentinel":
            return f"{scheme}+sentinel://{where}/{self.master_name}/{self.db}"
        if self.mode == "cluster":
            return f"{scheme}+cluster://{where}"
        return f"{scheme}://{where}/{self.db}"


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if not item:
        raise ValueError("an empty host in the host list")
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError("an empty host in the host list")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} of host {host!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 1023:
        raise ValueError(f"database {text!r} is not a number from 0 to 1023")
    return int(text)


def _tls(params: dict[str, str], tls: bool) -> TlsOptions | None:
    given = [k for k in _TLS_PARAMS if k in params]
    if not tls:
        if given:
            raise ValueError(
                f"{given[0]} needs a TLS scheme (rediss://, rediss+sentinel://, rediss+cluster://)"
            )
        return None
    reqs = params.get("ssl_cert_reqs", "required")
    if reqs not in ("required", "none"):
        raise ValueError(f"ssl_cert_reqs must be 'required' or 'none', not {reqs!r}")
    if ("ssl_certfile" in params) != ("ssl_keyfile" in params):
        raise ValueError("ssl_certfile and ssl_keyfile go together (a certificate and its key)")
    return TlsOptions(
        ca_file=params.get("ssl_ca_certs"),
        cert_file=params.get("ssl_certfile"),
        key_file=params.get("ssl_keyfile"),
        server_name=params.get("ssl_server_name"),
        verify=reqs == "required",
    )


def parse_redis_url(url: str) -> RedisTarget:
    """The target of ``url``, or a ValueError naming what is wrong (never the URL itself)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ValueError(f"must start with {_SCHEME_LIST} (got {scheme or 'no'} scheme)")
    raw = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(raw) - set(_PARAMS))
    if unknown:
        raise ValueError(f"unknown URL parameter {unknown[0]!r} (known: {', '.join(_PARAMS)})")
    params = {k: v[-1] for k, v in raw.items()}
    tls = _tls(params, scheme.startswith("rediss"))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path")
        return RedisTarget(
            mode="direct",
            unix_path=parts.path,
            db=_db(params.get("db", "0")),
            username=username,
            password=password,
        )
    netloc = parts.netloc.rpartition("@")[2]
    path = [p for p in parts.path.split("/") if p]
    if scheme.endswith("+sentinel"):
        if not path:
            raise ValueError("a sentinel URL needs the master name as its path: .../mymaster")
        if len(path) > 2:
            raise ValueError("a sentinel URL's path is /master or /master/db")
        hosts = tuple(_host_port(h, DEFAULT_SENTINEL_PORT) for h in netloc.split(","))
        return RedisTarget(
            mode="sentinel",
            hosts=hosts,
            db=_db(path[1] if len(path) == 2 else params.get("db", "0")),
            username=username,
            password=password,
            master_name=unquote(path[0]),
            sentinel_username=params.get("sentinel_username"),
            sentinel_password=params.get("sentinel_password"),
            tls=tls,
        )
    if scheme.endswith("+cluster"):
        if path or params.get("db", "0") != "0":
            raise ValueError("a Redis Cluster has database 0 only: no /db in a cluster URL")
        if "sentinel_username" in params or "sentinel_password" in params:
            raise ValueError("sentinel_username/sentinel_password need a redis+sentinel:// URL")
        return RedisTarget(
            mode="cluster",
            hosts=tuple(_host_port(h, DEFAULT_PORT) for h in netloc.split(",")),
            username=username,
            password=password,
            tls=tls,
        )
    if "," in netloc:
        raise ValueError("only a sentinel or cluster URL lists several hosts")
    if "sentinel_username" in params or "sentinel_password" in params:
        raise ValueError("sentinel_username/sentinel_password need a redis+sentinel:// URL")
    if len(path) > 1:
        raise ValueError("the URL's path is the database number only: /0")
    return RedisTarget(
        mode="direct",
        hosts=(_host_port(netloc or "localhost", DEFAULT_PORT),),
        db=_db(path[0] if path else params.get("db", "0")),
        username=username,
        password=password,
        tls=tls,
    )


def redact(url: str) -> str:
    """``url`` for display, or a placeholder if it does not parse."""
    try:
        return parse_redis_url(url).display()
    except ValueError:
        return "<invalid Redis URL>"
