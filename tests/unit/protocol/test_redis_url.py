"""The one Redis URL grammar: what it accepts, what it refuses, never leaking a password."""

from __future__ import annotations

import re

import pytest

from jobqueue_protocol.logformat import redact_url
from jobqueue_protocol.redis_url import RedisTarget, TlsOptions, parse_redis_url

ACCEPTED: list[tuple[str, RedisTarget]] = [
    ("redis://h:6380/2", RedisTarget(mode="direct", hosts=(("h", 6380),), db=2)),
    ("redis://h", RedisTarget(mode="direct", hosts=(("h", 6379),))),
    (
        "redis://u:p%40ss@h:1/0",
        RedisTarget(mode="direct", hosts=(("h", 1),), username="u", password="p@ss"),
    ),
    ("unix:///run/r.sock?db=3", RedisTarget(mode="direct", unix_path="/run/r.sock", db=3)),
    ("rediss://h:1", RedisTarget(mode="direct", hosts=(("h", 1),), tls=TlsOptions())),
    (
        "rediss://h:1/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_server_name=redis.example",
        RedisTarget(
            mode="direct",
            hosts=(("h", 1),),
            tls=TlsOptions(
                ca_file="/ca.pem",
                cert_file="/c.pem",
                key_file="/k.pem",
                server_name="redis.example",
            ),
        ),
    ),
    (
        "rediss://h:1?ssl_cert_reqs=none",
        RedisTarget(mode="direct", hosts=(("h", 1),), tls=TlsOptions(verify=False)),
    ),
    (
        "redis+sentinel://:pw@s1:26379,s2,[::1]:26381/mymaster/4?sentinel_password=sp",
        RedisTarget(
            mode="sentinel",
            hosts=(("s1", 26379), ("s2", 26379), ("::1", 26381)),
            db=4,
            password="pw",
            master_name="mymaster",
            sentinel_password="sp",
        ),
    ),
    (
        "redis+cluster://:pw@c1:7000,c2",
        RedisTarget(mode="cluster", hosts=(("c1", 7000), ("c2", 6379)), password="pw"),
    ),
    (
        "rediss+cluster://c1:7000?ssl_ca_certs=/ca.pem",
        RedisTarget(mode="cluster", hosts=(("c1", 7000),), tls=TlsOptions(ca_file="/ca.pem")),
    ),
    (
        "rediss+sentinel://s1:1/m",
        RedisTarget(mode="sentinel", hosts=(("s1", 1),), master_name="m", tls=TlsOptions()),
    ),
]


@pytest.mark.parametrize(("url", "expected"), ACCEPTED, ids=[u for u, _ in ACCEPTED])
def test_accepted(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url) == expected


REFUSED = [
    ("http://u:pw@h/", "must start with redis://, rediss://, unix://, redis+sentinel://"),
    ("h:6379", "(got no scheme)"),
    ("redis-sentinel://h/m", "(got redis-sentinel scheme)"),
    ("redis://h:99999/0", "port '99999' of host 'h' is not a number from 1 to 65535"),
    ("redis://h:1/abc", "database 'abc' is not a number from 0 to 1023"),
    ("redis://h:1/0/1", "the URL's path is the database number only"),
    ("redis://a:1,b:2/0", "only a sentinel or cluster URL lists several hosts"),
    ("redis+cluster://a:1/3", "a Redis Cluster has database 0 only"),
    ("redis+sentinel://s:1", "a sentinel URL needs the master name"),
    ("redis+sentinel://s:1/m/0/x", "a sentinel URL's path is /master or /master/db"),
    ("redis+sentinel://s:1,,s:2/m", "an empty host in the host list"),
    ("redis://h/0?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs a TLS scheme"),
    ("rediss://h/0?ssl_cert_reqs=optional", "ssl_cert_reqs must be 'required' or 'none'"),
    ("rediss://h/0?ssl_certfile=/c.pem", "ssl_certfile and ssl_keyfile go together"),
    ("rediss://h/0?ssl_ca_cert=/ca.pem", "unknown URL parameter 'ssl_ca_cert'"),
    ("redis://h/0?sentinel_password=x", "need a redis+sentinel:// URL"),
    ("unix://", "unix:// needs a socket path"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED, ids=[u for u, _ in REFUSED])
def test_refused_with_a_message_that_names_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_redis_url(url)
    assert "pw" not in str(info.value)


def test_display_and_redaction_never_show_a_password() -> None:
    url = "redis+sentinel://u:s3cret@s1:1,s2:2/m/0?sentinel_password=t0ps3cret"
    target = parse_redis_url(url)
    for shown in (target.display(), repr(target), redact_url(url)):
        assert "s3cret" not in shown
        assert "t0ps3cret" not in shown
    assert target.display() == "redis+sentinel://s1:1,s2:2/m/0"
