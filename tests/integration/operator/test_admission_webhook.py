"""What needs other objects to judge is refused at admission by the operator's webhook.

The real operator (as its ServiceAccount) serves kopf's admission webhook on
loopback with a self-signed certificate and registers it in the ValidatingWebhookConfiguration
``jobqueue.dev``; the real API server calls it. The same run checks that the
operator reads its defaults ConfigMap and shows the thresholds in force in
``status.effective``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from operator_harness import Kubectl, OperatorProcess, deployment, jobqueue, wait_for

from jobqueue_devkit.ports import free_port

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

WEBHOOK_CONFIG = "jobqueue.dev"


@pytest.fixture
def webhook_cleanup(kubectl: Kubectl) -> Iterator[None]:
    """The webhook is persistent (kept when a replica stops); later tests need none."""
    yield
    kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "--ignore-not-found")


def _defaults_readable(kubectl: Kubectl, namespace: str, data: dict[str, str]) -> None:
    """A defaults ConfigMap in ``namespace`` and the right to get it, as role_defaults grants."""
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "defaults", "namespace": namespace},
            "data": data,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "read-defaults", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["defaults"],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "read-defaults", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-defaults",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "jobqueue-operator",
                 "namespace": "jobqueue-system"}
            ],
        },
    )  # fmt: skip


def _create(kubectl: Kubectl, doc: dict[str, object]) -> str:
    return kubectl("create", "-f", "-", stdin=json.dumps(doc), check=False)


def test_webhook_refuses_a_claimed_target_and_status_shows_the_defaults_in_force(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
    webhook_cleanup: None,
) -> None:
    _defaults_readable(kubectl, namespace, {"MAX_WORKERS": "7", "SCALE_DOWN_QUEUE_DEPTH": "4"})
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        deployment("hpa-target", namespace, replicas=1),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "cpu", "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": "hpa-target"},
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        },
        jobqueue("first", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                 scaleUp={"queueDepth": 20}),
    )  # fmt: skip
    port = free_port()
    start_operator(
        JQO_WEBHOOK_PORT=str(port),
        JQO_LISTEN_ADDR="127.0.0.1",
        JQO_DEFAULTS_CONFIGMAP=f"{namespace}/defaults",
    )
    # The operator registers its webhook at start; its index knows "first" once it runs.
    wait_for(
        lambda: f":{port}/" in kubectl(
            "get", "validatingwebhookconfiguration", WEBHOOK_CONFIG,
            "-o", "jsonpath={.webhooks[*].clientConfig.url}", check=False,
        ),
        30,
        "the webhook registered",
    )  # fmt: skip
    wait_for(lambda: "effective" in kubectl.status("first", namespace), 30, "status.effective")

    effective = kubectl.status("first", namespace)["effective"]
    assert effective["maxReplicas"] == 7, effective  # from the ConfigMap
    assert effective["minReplicas"] == 1, effective  # built-in default
    assert effective["scaleUp"]["queueDepth"] == 20, effective  # the JobQueue's own
    assert effective["scaleDown"]["queueDepth"] == 4, effective  # from the ConfigMap
    assert effective["defaultsSource"] == f"ConfigMap {namespace}/defaults"

    second = jobqueue("second", namespace, "worker", redis_url)
    refused = _create(kubectl, second)
    assert "created" not in refused, refused
    assert "spec.scaleTargetRef: Deployment worker is already scaled by JobQueue first" in refused

    vs_hpa = jobqueue("vs-hpa", namespace, "hpa-target", redis_url)
    refused = _create(kubectl, vs_hpa)
    assert "created" not in refused, refused
    assert "already scaled by HorizontalPodAutoscaler cpu" in refused

    # Moving an admitted JobQueue onto a claimed target is refused too ...
    kubectl.apply(deployment("spare", namespace, replicas=1))
    assert "created" in _create(kubectl, jobqueue("third", namespace, "spare", redis_url))
    onto_worker = '{"spec": {"scaleTargetRef": {"name": "worker"}}}'
    moved = kubectl("patch", "jobqueue", "third", "-n", namespace, "--type=merge",
                    "-p", onto_worker, check=False)  # fmt: skip
    assert "already scaled by JobQueue first" in moved, moved
    # ... while any other update of a JobQueue goes through.
    tuned = kubectl("patch", "jobqueue", "first", "-n", namespace, "--type=merge",
                    "-p", '{"spec": {"pollingIntervalSeconds": 2}}', check=False)  # fmt: skip
    assert "patched" in tuned, tuned
