"""The API client's HTTP session: no netrc lookup per request unless a proxy is configured.

Kept apart from ``kube.py`` because it needs no Kubernetes client: it only
touches the aiohttp session that ``kubernetes_asyncio.client.ApiClient`` opened.
"""

from __future__ import annotations

import os
from typing import Any

#: With one of these set, aiohttp keeps trusting the environment (see skip_netrc_lookups).
PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
)


def skip_netrc_lookups(api: Any) -> bool:
    """Stop aiohttp reading ``~/.netrc`` in a worker thread before every API request.

    kubernetes_asyncio opens its aiohttp session with ``trust_env=True``, and aiohttp
    then looks up netrc credentials for each request that has no ``auth=`` (ours carry
    a bearer token or a client certificate, never netrc). With many JobQueues that
    thread hop per request is a large share of the operator's CPU (BENCHMARKS.md). ``trust_env``
    also enables the proxy variables, so it stays on when one of them is set.
    Returns whether the lookups are now off.
    """
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return False
    session = api.rest_client.pool_manager
    if getattr(session, "_trust_env", None) is None:  # an aiohttp without the attribute
        return False
    session._trust_env = False
    return True
