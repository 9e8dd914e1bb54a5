"""The plane with the aggregation layer: front-proxy flags accepted, HPAs act.

Opt-in (real KEDA's tests use it), so the run-wide plane's HPAs stay inert. This
one needs no KEDA: an HPA whose floor is above the Deployment's count raises it,
which only a running HPA controller does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jobqueue_devkit import binaries
from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.errors import DevkitError

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


@pytest.fixture(scope="module")
def aggregation_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        bins = binaries.ensure_binaries()
    except DevkitError as exc:
        pytest.skip(f"control-plane binaries unavailable: {exc}")
    plane = ControlPlane(
        bins, workdir=Path(tmp_path_factory.mktemp("aggregation")), aggregation=True
    ).start(crds_dir=None)
    yield plane
    plane.stop()


def test_front_proxy_ca_is_published_for_aggregated_servers(
    aggregation_plane: ControlPlane,
) -> None:
    config = json.loads(
        aggregation_plane.kubectl(
            "get",
            "configmap",
            "extension-apiserver-authentication",
            "-n",
            "kube-system",
            "-o",
            "json",
        )
    )
    data = config["data"]
    assert "BEGIN CERTIFICATE" in data["requestheader-client-ca-file"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]


def test_the_hpa_controller_runs(aggregation_plane: ControlPlane) -> None:
    plane = aggregation_plane
    plane.kubectl("create", "namespace", "hpa")
    docs = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "hpa"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.invalid/w:1"}]},
                },
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "hpa"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            },
        },
    ]
    manifest = plane.workdir / "hpa.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    plane.kubectl("apply", "-f", str(manifest))
    deadline = time.monotonic() + 60
    while True:
        replicas = plane.kubectl(
            "get", "deployment", "web", "-n", "hpa", "-o", "jsonpath={.spec.replicas}"
        )
        if replicas == "3":
            return
        assert time.monotonic() < deadline, f"the HPA never raised 1 -> 3 (at {replicas})"
        time.sleep(0.5)
