"""The operator's ServiceAccount can do what it needs and nothing more (manifests/rbac).

The Role is bound only in the test's namespace, like examples/rolebinding.yaml
binds it in jobqueue-demo. Every other test in this folder already runs the
operator with exactly these credentials; this one lists the rights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_harness import Kubectl

pytestmark = [pytest.mark.k8s]

SA = "system:serviceaccount:jobqueue-system:jobqueue-operator"

# (verb, resource, in the JobQueue's namespace?) -> allowed
ALLOWED = [
    ("get", "jobqueues.jobqueue.dev", ""),
    ("list", "jobqueues.jobqueue.dev", ""),
    ("watch", "jobqueues.jobqueue.dev", ""),
    ("patch", "jobqueues.jobqueue.dev", ""),
    ("patch", "jobqueues.jobqueue.dev", "status"),
    ("get", "deployments.apps", ""),
    ("list", "deployments.apps", ""),
    ("watch", "deployments.apps", ""),
    ("get", "deployments.apps", "scale"),
    ("patch", "deployments.apps", "scale"),
    ("update", "deployments.apps", "scale"),
    # StatefulSets as targets: the object by name (its Pod template), and /scale
    ("get", "statefulsets.apps", ""),
    ("get", "statefulsets.apps", "scale"),
    ("patch", "statefulsets.apps", "scale"),
    ("get", "secrets", ""),
    ("create", "events", ""),
    ("list", "horizontalpodautoscalers.autoscaling", ""),
    # busy-aware scale-down: list the target's Pods, write their deletion cost
    ("get", "pods", ""),
    ("list", "pods", ""),
    ("patch", "pods", ""),
]
DENIED = [
    ("delete", "deployments.apps", ""),
    ("create", "deployments.apps", ""),
    ("update", "deployments.apps", ""),
    ("patch", "deployments.apps", ""),
    ("list", "statefulsets.apps", ""),
    ("watch", "statefulsets.apps", ""),
    ("patch", "statefulsets.apps", ""),
    ("update", "statefulsets.apps", ""),
    ("delete", "statefulsets.apps", ""),
    ("update", "statefulsets.apps", "scale"),
    ("create", "statefulsets.apps", ""),
    # custom resources are granted by the user, per kind (docs/operator.md)
    ("patch", "replicasets.apps", "scale"),
    ("list", "secrets", ""),
    ("watch", "secrets", ""),
    ("create", "secrets", ""),
    ("delete", "jobqueues.jobqueue.dev", ""),
    ("create", "jobqueues.jobqueue.dev", ""),
    ("update", "jobqueues.jobqueue.dev", ""),
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("create", "pods", "exec"),
    ("update", "pods", ""),
    ("watch", "pods", ""),
    ("deletecollection", "pods", ""),
    ("create", "pods", "eviction"),
    ("patch", "pods", "status"),
    ("patch", "horizontalpodautoscalers.autoscaling", ""),
    ("watch", "horizontalpodautoscalers.autoscaling", ""),
    ("delete", "events", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("impersonate", "serviceaccounts", ""),
]


def can_i(kubectl: Kubectl, verb: str, resource: str, sub: str, namespace: str) -> bool:
    args = ["auth", "can-i", verb, resource, "-n", namespace, f"--as={SA}"]
    if sub:
        args.append(f"--subresource={sub}")
    return kubectl(*args, check=False).strip() == "yes"


def _mismatches(
    kubectl: Kubectl, table: list[tuple[str, str, str]], namespace: str, expected: bool
) -> list[str]:
    return [
        f"{verb} {resource}{'/' + sub if sub else ''} in {namespace}: expected {expected}"
        for verb, resource, sub in table
        if can_i(kubectl, verb, resource, sub, namespace) is not expected
    ]


def test_can_what_it_needs_in_its_namespace(
    kubectl: Kubectl, operator_kubeconfig: Path, namespace: str
) -> None:
    assert _mismatches(kubectl, ALLOWED, namespace, expected=True) == []


def test_cannot_do_more_in_its_namespace(
    kubectl: Kubectl, operator_kubeconfig: Path, namespace: str
) -> None:
    assert _mismatches(kubectl, DENIED, namespace, expected=False) == []


def test_nothing_in_another_namespace(
    kubectl: Kubectl, operator_kubeconfig: Path, namespace: str
) -> None:
    """Secrets, Deployments' /scale, everything: only where a RoleBinding grants it.

    So a JobQueue cannot make the operator scale a Deployment, or read a Secret, of
    another namespace (and the schema has no namespace field to ask for it).
    """
    other = f"{namespace}-other"
    kubectl("create", "namespace", other)
    try:
        assert _mismatches(kubectl, ALLOWED + DENIED, other, expected=False) == []
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_cluster_wide_it_only_reads_crds_and_namespaces(
    kubectl: Kubectl, operator_kubeconfig: Path
) -> None:
    """kopf needs CRDs (discovery) and namespaces (to resolve --namespace) cluster-wide."""
    assert kubectl("auth", "can-i", "list", "customresourcedefinitions.apiextensions.k8s.io",
                   f"--as={SA}", check=False).strip() == "yes"  # fmt: skip
    for verb, resource in [
        ("list", "secrets"),
        ("get", "secrets"),
        ("list", "deployments.apps"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "namespaces"),
        ("create", "namespaces"),
    ]:
        out = kubectl(
            "auth", "can-i", verb, resource, "--all-namespaces", f"--as={SA}", check=False
        )
        assert out.strip() == "no", f"{verb} {resource} cluster-wide"


def test_the_token_really_is_the_service_account(
    kubectl: Kubectl, operator_kubeconfig: Path, namespace: str
) -> None:
    """The kubeconfig the operator runs with is not admin: it is refused a Secret list."""
    import subprocess

    out = subprocess.run(
        ["kubectl", f"--kubeconfig={operator_kubeconfig}", "get", "secrets", "-n", namespace],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "forbidden" in out.stderr
    assert SA in out.stderr
