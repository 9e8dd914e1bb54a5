"""The API client's HTTP session does no netrc lookup per request (and keeps proxies).

kubernetes_asyncio opens its aiohttp session with ``trust_env=True``; aiohttp then
reads ``~/.netrc`` in a worker thread before every request without ``auth=``, which
was about a fifth of the operator's CPU at 1,000 JobQueues. A real local HTTP server
counts what happens per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio import client

from jobqueue_operator.http_session import PROXY_VARIABLES, skip_netrc_lookups


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status"})

    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def _netrc_lookups(api: client.ApiClient, url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    calls: list[str] = []
    original = aiohttp.ClientSession._get_netrc_auth

    def counting(self: aiohttp.ClientSession, host: str) -> aiohttp.BasicAuth | None:
        calls.append(host)
        return original(self, host)

    monkeypatch.setattr(aiohttp.ClientSession, "_get_netrc_auth", counting)
    session = api.rest_client.pool_manager
    for _ in range(3):
        async with session.get(url, headers={"Authorization": "Bearer t"}) as resp:
            assert resp.status == 200
    return len(calls)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def test_requests_do_no_netrc_lookup(
    server: str, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    api = client.ApiClient(client.Configuration())
    try:
        assert await _netrc_lookups(api, server, monkeypatch) == 3, "the library default"
        assert skip_netrc_lookups(api)
        assert await _netrc_lookups(api, server, monkeypatch) == 0
    finally:
        await api.close()


async def test_a_proxy_variable_keeps_the_environment_trusted(
    monkeypatch: pytest.MonkeyPatch, no_proxy_env: None
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    api = client.ApiClient(client.Configuration())
    try:
        assert not skip_netrc_lookups(api)
        assert api.rest_client.pool_manager.trust_env
    finally:
        await api.close()
