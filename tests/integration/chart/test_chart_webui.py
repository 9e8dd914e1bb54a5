"""The chart's optional web UI: nothing unless `webui.enabled`; then a hardened
Deployment that always requires tokens, its token Secret, read-only RBAC and a Service.

The server-side dry-run of these objects is the all-on case of test_chart_dry_run.py.
"""

from __future__ import annotations

import base64

import pytest
from chart_harness import Helm, find, one, pod_spec

pytestmark = [pytest.mark.helm]


def test_off_by_default(helm: Helm) -> None:
    docs = helm.template(sets=[])
    assert find(docs, "Deployment", "jobqueue-web") == []
    assert find(docs, "Secret", "jobqueue-web-tokens") == []


def test_on_renders_a_token_protected_read_only_ui(helm: Helm) -> None:
    docs = helm.template(
        sets=["webui.enabled=true", "webui.redactFields[0]=card", "webui.secureCookies=true"]
    )
    deploy = one(docs, "Deployment", "jobqueue-web")
    pod = pod_spec(deploy)
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "web"
    assert "--admin-token-file=/etc/jobqueue-web/admin" in args
    assert "--readonly-token-file=/etc/jobqueue-web/readonly" in args
    assert "--redact-field=card" in args
    assert "--secure-cookies" in args
    assert not any("redis://" in a for a in args)  # the password stays in the environment
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    secret = one(docs, "Secret", "jobqueue-web-tokens")
    tokens = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(tokens) == {"admin", "readonly"}
    assert all(len(t) >= 16 for t in tokens.values())
    assert tokens["admin"] != tokens["readonly"]
    role = one(docs, "Role", "jobqueue-web-read")
    assert role["rules"] == [
        {"apiGroups": ["jobqueue.dev"], "resources": ["jobqueues"], "verbs": ["get", "list"]}
    ]
    assert one(docs, "Service", "jobqueue-web")["spec"]["ports"][0]["port"] == 8089


def test_an_existing_secret_is_used_not_made(helm: Helm) -> None:
    docs = helm.template(
        sets=["webui.enabled=true", "webui.tokensSecret.create=false", "webui.tokensSecret.name=s"]
    )
    assert find(docs, "Secret", "s") == []
    volumes = pod_spec(one(docs, "Deployment", "jobqueue-web"))["volumes"]
    assert {"name": "tokens", "secret": {"secretName": "s", "defaultMode": 0o440}} in volumes
