"""Scale targets other than a Deployment, on the real control plane and a real Redis.

A StatefulSet and a custom resource whose CRD declares ``subresources.scale``
are scaled from queue depth by the operator as its ServiceAccount. The custom
resource's ``/scale`` right is granted here exactly as docs/operator.md tells
users to (a Role with ``<plural>/scale``). No controller runs for either: the
local plane has no StatefulSet controller, and the custom resource has none by
design; what the operator reads and writes is ``/scale``'s ``spec.replicas``.
Targets the cluster cannot scale give one clear condition and Event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_harness import (
    Kubectl,
    OperatorProcess,
    deployment,
    drain,
    fill,
    jobqueue,
    wait_for,
)

from jobqueue_devkit.controlplane import ControlPlane
from jobqueue_devkit.ports import free_port
from jobqueue_operator.timing import DIRECTION_DWELL_S

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

GROUP = "scaling.jobqueue.test"
SA = {"kind": "ServiceAccount", "name": "jobqueue-operator", "namespace": "jobqueue-system"}
SCALING = {
    "pollingIntervalSeconds": 1,
    "minReplicas": 1,
    "maxReplicas": 3,
    "scaleUp": {"queueDepth": 10, "cooldownSeconds": 0, "maxStep": 3},
    "scaleDown": {"queueDepth": 2, "cooldownSeconds": 0},
}


def _crd(kind: str, plural: str, *, scale: bool) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": open_object, "status": open_object},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def test_crds(control_plane: ControlPlane) -> Iterator[None]:
    """WorkerPool (with a scale subresource) and Report (without), cluster-wide."""
    k = Kubectl(control_plane)
    k.apply(_crd("WorkerPool", "workerpools", scale=True), _crd("Report", "reports", scale=False))
    for plural in ("workerpools", "reports"):
        k("wait", "--for=condition=Established", f"crd/{plural}.{GROUP}", "--timeout=30s")
    yield
    k("delete", "crd", f"workerpools.{GROUP}", f"reports.{GROUP}", "--wait=false", check=False)


def statefulset(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    dep = deployment(name, namespace, replicas)
    dep["kind"] = "StatefulSet"
    dep["spec"]["serviceName"] = name
    return dep


def grant_scale(namespace: str, plural: str) -> list[dict[str, Any]]:
    """The rule docs/operator.md gives for a custom resource, as a Role and its binding."""
    name = f"jobqueue-operator-{plural}"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [
                {"apiGroups": [GROUP], "resources": [f"{plural}/scale"], "verbs": ["get", "patch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [SA],
        },
    ]


def scale_of(kubectl: Kubectl, resource: str, namespace: str) -> int:
    out = kubectl("get", resource, "-n", namespace, "--subresource=scale", "-o", "json")
    return int(json.loads(out)["spec"].get("replicas", 0))


def test_a_statefulset_and_a_custom_resource_follow_the_queue_up_and_down(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    test_crds: None,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    pool = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "WorkerPool",
        "metadata": {"name": "pool", "namespace": namespace},
        "spec": {"replicas": 1},
    }
    sts_jq = jobqueue("sts", namespace, "w", redis_url, **SCALING)
    sts_jq["spec"]["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "w"}
    pool_jq = jobqueue("pool", namespace, "pool", redis_url, **SCALING)
    pool_jq["spec"]["scaleTargetRef"] = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "WorkerPool",
        "name": "pool",
    }
    kubectl.apply(statefulset("w", namespace, 1), pool, *grant_scale(namespace, "workerpools"))
    kubectl.apply(sts_jq, pool_jq)
    start_operator()
    for name in ("sts", "pool"):
        wait_for(
            lambda name=name: kubectl.condition(name, namespace, "Ready").get("status") == "True",
            30,
            f"JobQueue {name} Ready",
        )
    assert kubectl.status("sts", namespace)["target"] == "StatefulSet/w"
    assert kubectl.status("pool", namespace)["target"] == "WorkerPool/pool"
    columns = kubectl("get", "jq", "-n", namespace, "--no-headers").split("\n")
    assert {line.split()[1] for line in columns if line} == {"StatefulSet/w", "WorkerPool/pool"}

    fill(redis_url, "sts:jobs", 25)
    fill(redis_url, "pool:jobs", 25)
    wait_for(lambda: scale_of(kubectl, "statefulset/w", namespace) == 3, 10, "StatefulSet up")
    wait_for(lambda: scale_of(kubectl, "workerpool/pool", namespace) == 3, 10, "WorkerPool up")
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=ScaledUp")
    assert "Scaled StatefulSet w from 1 to 3" in events
    assert "Scaled WorkerPool pool from 1 to 3" in events

    drain(redis_url, "sts:jobs")
    drain(redis_url, "pool:jobs")
    # The policy reverses a scale no sooner than DIRECTION_DWELL_S after it.
    limit = DIRECTION_DWELL_S + 20
    wait_for(lambda: scale_of(kubectl, "statefulset/w", namespace) == 1, limit, "StatefulSet down")
    wait_for(lambda: scale_of(kubectl, "workerpool/pool", namespace) == 1, limit, "WorkerPool down")
    wait_for(
        lambda: kubectl.status("pool", namespace).get("podSelection", {}).get("message"),
        10,
        "the pool's pod selection recorded",
    )
    message = kubectl.status("pool", namespace)["podSelection"]["message"]
    assert "no Pod selector" in message, message
    for name in ("sts", "pool"):
        assert kubectl.condition(name, namespace, "Ready")["status"] == "True"


def test_a_target_the_cluster_cannot_scale_is_a_condition_naming_the_field(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    test_crds: None,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    cases = {
        "no-kind": ({"apiVersion": "apps/v1", "kind": "NoSuchKind"}, "apps/v1 has no kind"),
        "no-scale": ({"apiVersion": f"{GROUP}/v1", "kind": "Report"}, "no /scale subresource"),
        "no-group": ({"apiVersion": "nowhere.example/v1", "kind": "Pool"}, "is not served"),
    }
    for name, (ref, _) in cases.items():
        job = jobqueue(name, namespace, "x", redis_url, pollingIntervalSeconds=1)
        job["spec"]["scaleTargetRef"] = {**ref, "name": "x"}
        kubectl.apply(job)
    kubectl.apply(deployment("fine", namespace, 1),
                  jobqueue("fine", namespace, "fine", redis_url, pollingIntervalSeconds=1,
                           minReplicas=2))  # fmt: skip
    op = start_operator()

    def invalid(name: str) -> dict[str, Any]:
        ready = kubectl.condition(name, namespace, "Ready")
        return ready if ready.get("reason") == "InvalidTarget" else {}

    for name, (_, words) in cases.items():
        ready = wait_for(lambda name=name: invalid(name), 30, f"{name}: InvalidTarget")
        assert ready["status"] == "False"
        assert ready["message"].startswith("spec.scaleTargetRef."), ready
        assert words in ready["message"], ready
        assert "\n" not in ready["message"]
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=InvalidTarget")
    assert events.count("spec.scaleTargetRef") >= len(cases)
    # The other JobQueue is served as usual, and the loops keep running.
    wait_for(lambda: kubectl.scaled_to("fine", "fine", namespace, 2), 15, "the healthy one acts")
    assert op.loops() == 4
    assert "Traceback" not in op.output()


@pytest.fixture
def webhook_cleanup(kubectl: Kubectl) -> Iterator[None]:
    """The webhook is persistent (kept when a replica stops); later tests need none."""
    yield
    kubectl("delete", "validatingwebhookconfiguration", "jobqueue.dev", "--ignore-not-found")


def test_the_webhook_keys_a_claim_on_group_kind_and_name(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    start_operator: Callable[..., OperatorProcess],
    webhook_cleanup: None,
) -> None:
    kubectl.apply(
        deployment("w", namespace, 1),
        statefulset("w", namespace, 1),
        jobqueue("dep", namespace, "w", redis_url, pollingIntervalSeconds=1),
    )
    port = free_port()
    start_operator(JQO_WEBHOOK_PORT=str(port), JQO_LISTEN_ADDR="127.0.0.1")
    wait_for(
        lambda: f":{port}/" in kubectl(
            "get", "validatingwebhookconfiguration", "jobqueue.dev",
            "-o", "jsonpath={.webhooks[*].clientConfig.url}", check=False,
        ),
        30,
        "the webhook registered",
    )  # fmt: skip
    wait_for(lambda: kubectl.status("dep", namespace).get("target"), 30, "the first JobQueue runs")

    def create(name: str, ref: dict[str, str], *dry_run: str) -> str:
        job = jobqueue(name, namespace, "w", redis_url)
        job["spec"]["scaleTargetRef"] = ref
        return kubectl("create", *dry_run, "-f", "-", stdin=json.dumps(job), check=False)

    def refused(name: str, ref: dict[str, str]) -> str:
        out = create(name, ref, "--dry-run=server")
        return "" if "created" in out else out

    sts_ref = {"kind": "StatefulSet", "name": "w"}
    assert "created" in create("sts", sts_ref), "same name, another kind: another target"
    # The webhook knows a JobQueue once kopf's watch has indexed it.
    out = wait_for(lambda: refused("sts-again", sts_ref), 15, "a second claim refused")
    assert "spec.scaleTargetRef: StatefulSet w is already scaled by JobQueue sts" in out, out
    spelled = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}
    out = refused("dep-again", spelled)
    assert "Deployment w is already scaled by JobQueue dep" in out, out
