"""The rendered objects are accepted by a real API server (server-side dry-run).

The chart's CRDs are applied first (for real: the objects that use them cannot be
validated without them); every other object goes through `kubectl apply
--dry-run=server`, so the API server runs its full validation and admission,
Pod Security "restricted" included, without storing anything. The Prometheus
Operator's kinds (PodMonitor, ServiceMonitor, PrometheusRule) are left out: their
CRDs are not part of this project; the rule content is the checked copy of
manifests/monitoring/prometheusrule.yaml.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from chart_harness import ALL_ON, Doc, Helm

from jobqueue_devkit.controlplane import ControlPlane

pytestmark = [pytest.mark.helm, pytest.mark.k8s]

NOT_OURS = "monitoring.coreos.com/"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def kubectl(
    plane: ControlPlane, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def apply_crds(plane: ControlPlane, crds: list[Doc]) -> None:
    out = kubectl(
        plane, "apply", "--server-side", "--force-conflicts", "-f", "-",
        stdin=yaml.safe_dump_all(crds),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    plane.wait_crds_established(60)


def make_namespace(plane: ControlPlane, name: str) -> None:
    kubectl(plane, "create", "namespace", name)
    out = kubectl(plane, "label", "--overwrite", "namespace", name, RESTRICTED)
    assert out.returncode == 0, out.stderr


def dry_run(plane: ControlPlane, docs: list[Doc]) -> str:
    out = kubectl(
        plane, "apply", "--dry-run=server", "--server-side", "--field-manager=helm", "-f", "-",
        stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "violate" not in out.stderr, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    return out.stdout


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_rendered_objects_pass_server_side_dry_run(
    helm: Helm, control_plane: ControlPlane, values: Path | None
) -> None:
    suffix = uuid.uuid4().hex[:6]
    release_ns = f"jq-chart-ops-{suffix}"
    files = [values] if values is not None else []
    docs = helm.template(*files, release="jq", namespace=release_ns, include_crds=True)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert {c["metadata"]["name"] for c in crds} == {
        "jobqueues.jobqueue.dev",
    }
    apply_crds(control_plane, crds)
    objects = [
        d
        for d in docs
        if d["kind"] != "CustomResourceDefinition" and not d["apiVersion"].startswith(NOT_OURS)
    ]
    namespaces = {release_ns} | {d["metadata"].get("namespace") for d in objects} - {None}
    for ns in namespaces:
        make_namespace(control_plane, ns)
    try:
        out = dry_run(control_plane, objects)
        for doc in objects:
            kind = doc["kind"].lower()
            assert f"{kind}.{doc['apiVersion'].split('/')[0]}/{doc['metadata']['name']}" in out or (
                f"{kind}/{doc['metadata']['name']}" in out
            ), (doc["kind"], doc["metadata"]["name"], out)
        # Nothing was stored.
        listed = kubectl(control_plane, "get", "deployments", "-n", release_ns, "-o", "name")
        assert listed.stdout.strip() == ""
    finally:
        for ns in namespaces:
            if ns.startswith("jq-chart-ops-"):
                kubectl(control_plane, "delete", "namespace", ns, "--wait=false")


def test_the_dry_run_catches_a_pod_security_violation(
    helm: Helm, control_plane: ControlPlane
) -> None:
    """The same check refuses an operator Pod that may escalate privileges."""
    release_ns = f"jq-chart-ops-{uuid.uuid4().hex[:6]}"
    docs = helm.template(
        release="jqbad",
        namespace=release_ns,
        sets=["securityContext.allowPrivilegeEscalation=true"],
    )
    make_namespace(control_plane, release_ns)
    try:
        (dep,) = [d for d in docs if d["kind"] == "Deployment"]
        out = kubectl(
            control_plane, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(dep)
        )
        assert "violate PodSecurity" in out.stderr, out.stderr
        assert "allowPrivilegeEscalation" in out.stderr
    finally:
        kubectl(control_plane, "delete", "namespace", release_ns, "--wait=false")
