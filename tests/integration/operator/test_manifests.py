"""manifests/ installs on a real API server and meets the "restricted" Pod Security Standard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Kubectl

pytestmark = [pytest.mark.k8s]

ROOT = Path(__file__).resolve().parents[3]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


@pytest.fixture
def installed(kubectl: Kubectl) -> Iterator[str]:
    """``kubectl apply -k manifests``; the cluster-wide admission binding is removed after,
    so the shipped defaults do not judge the JobQueues of the tests that follow."""
    out = kubectl("apply", "-k", str(ROOT / "manifests"))
    yield out
    kubectl("delete", "validatingadmissionpolicybinding", "jobqueue-defaults", "--ignore-not-found")


def test_install_and_examples_apply_without_pod_security_warnings(
    kubectl: Kubectl, installed: str
) -> None:
    out = installed
    assert "deployment.apps/jobqueue-operator" in out
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/jobqueue-defaults" in out
    assert "poddisruptionbudget.policy/jobqueue-operator" in out
    assert "networkpolicy.networking.k8s.io/jobqueue-operator" in out
    out = kubectl("apply", "-k", str(ROOT / "manifests" / "examples"), check=False)
    assert "jobqueue.jobqueue.dev/email-processing-high" in out, out
    assert "violate PodSecurity" not in out
    assert "forbidden" not in out
    # The namespaces enforce "restricted": a privileged pod is refused there,
    # so the clean apply above means something.
    refused = kubectl(
        "run", "bad", "-n", "jobqueue-demo", "--image=busybox", "--dry-run=server",
        "--overrides", '{"spec": {"containers": [{"name": "bad", "image": "busybox", '
        '"securityContext": {"privileged": true}}]}}',
        check=False,
    )  # fmt: skip
    assert "violates PodSecurity" in refused or "forbidden" in refused, refused


def test_operator_deployment_is_hardened() -> None:
    doc = yaml.safe_load((ROOT / "manifests" / "operator" / "deployment.yaml").read_text())
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = _containers(doc)
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Liveness (kopf: the loop answers) and readiness (start-up done) are different probes.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] == "ready"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JQO_READY_PORT"] == str(ports["ready"])
    assert any(a.startswith("--lease=") for a in container["args"])


def test_rbac_never_lists_or_watches_secrets_and_has_no_wildcards() -> None:
    for path in (ROOT / "manifests" / "rbac").glob("clusterrole*.yaml"):
        role = yaml.safe_load(path.read_text())
        for rule in role.get("rules", []):
            assert "*" not in rule["verbs"], path
            assert "*" not in rule["resources"], path
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"], path
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), path
