"""The kustomize manifests and the chart describe the same operator.

manifests/ stays the plain `kubectl apply -k` install; the chart is the Helm one.
Every object the two share (rendered with the chart's defaults as release
`jobqueue-operator` in `jobqueue-system`, the names manifests/ uses) must be equal
once the labels only Helm adds are set aside, so a change to one that is not made
to the other fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_harness import ROOT, Doc, Helm, key

pytestmark = [pytest.mark.helm]

#: Labels Helm adds to every object; the kustomize manifests carry none of them.
HELM_ONLY_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
}
SHARED = {
    ("ServiceAccount", "jobqueue-system", "jobqueue-operator"),
    ("ClusterRole", "", "jobqueue-operator-framework"),
    ("ClusterRole", "", "jobqueue-operator"),
    ("ClusterRoleBinding", "", "jobqueue-operator-framework"),
    ("Deployment", "jobqueue-system", "jobqueue-operator"),
    ("Service", "jobqueue-system", "jobqueue-operator-metrics"),
    ("PodDisruptionBudget", "jobqueue-system", "jobqueue-operator"),
    ("RoleBinding", "jobqueue-demo", "jobqueue-operator"),
    ("Role", "jobqueue-system", "jobqueue-operator-own"),
    ("RoleBinding", "jobqueue-system", "jobqueue-operator-own"),
    ("Service", "jobqueue-system", "jobqueue-operator-webhook"),
    ("NetworkPolicy", "jobqueue-system", "jobqueue-operator"),
    ("ConfigMap", "jobqueue-system", "jobqueue-operator-defaults"),
    ("ValidatingAdmissionPolicy", "", "jobqueue-defaults"),
    ("ValidatingAdmissionPolicyBinding", "", "jobqueue-defaults"),
    ("ValidatingAdmissionPolicy", "", "jobqueue-deprecations"),
    ("ValidatingAdmissionPolicyBinding", "", "jobqueue-deprecations"),
}


def kustomize(path: str) -> list[Doc]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def without_helm_labels(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_helm_labels(v) for k, v in value.items() if k not in HELM_ONLY_LABELS}
    if isinstance(value, list):
        return [without_helm_labels(v) for v in value]
    return value


def test_shared_objects_are_equal(helm: Helm) -> None:
    chart = {key(d): without_helm_labels(d) for d in helm.template()}
    plain = {key(d): d for d in kustomize("manifests") + kustomize("manifests/examples")}
    shared = set(chart) & set(plain)
    assert shared == SHARED
    for k in sorted(shared):
        assert chart[k] == plain[k], f"{k}: the chart and manifests/ disagree"


def test_the_comparison_sees_a_difference(helm: Helm) -> None:
    """A changed value in the chart makes its Deployment differ from manifests/."""
    chart = {key(d): without_helm_labels(d) for d in helm.template(sets=["tmpSizeLimit=17Mi"])}
    plain = {key(d): d for d in kustomize("manifests")}
    k = ("Deployment", "jobqueue-system", "jobqueue-operator")
    assert chart[k] != plain[k]


def test_a_chart_worker_is_shaped_like_the_example_workers(helm: Helm, tmp_path: Path) -> None:
    """The chart's `workers` entry and manifests/examples/workers.yaml build the same Pod."""
    values = tmp_path / "workers.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "workers": [
                    {
                        "name": "email-processing",
                        "queues": ["email:processing"],
                        "handlers": "jobqueue_worker.examples",
                    }
                ]
            }
        )
    )
    (chart,) = [
        d
        for d in helm.template(values)
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "email-processing-worker"
    ]
    (plain,) = [
        d
        for d in kustomize("manifests/examples")
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "email-processing-worker"
    ]
    assert "replicas" not in chart["spec"]
    assert "replicas" not in plain["spec"]
    chart_pod = chart["spec"]["template"]["spec"]
    plain_pod = plain["spec"]["template"]["spec"]
    # The chart spells out the image's ENTRYPOINT (`jobqueue`); the examples rely on it.
    assert chart_pod["containers"][0].pop("command") == ["jobqueue"]
    assert chart_pod == plain_pod
