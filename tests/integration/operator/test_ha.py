"""Two operator replicas elect one leader on a Lease: exactly one acts; fail-over is fast.

The Lease lives in the test's namespace (``JQO_LEASE_NAMESPACE``) with the shipped
Role (manifests/rbac/role_operator.yaml) bound there, so the operators run with
exactly the rights they have in a cluster.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from operator_harness import Kubectl, OperatorProcess, deployment, fill, jobqueue, wait_for

from jobqueue_devkit.ports import free_port
from jobqueue_operator.leader import DURATION_S, RETRY_S

pytestmark = [pytest.mark.k8s, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
LEASE = "jobqueue-operator"
SA_USER = "system:serviceaccount:jobqueue-system:jobqueue-operator"
#: The standby takes over once it has seen the Lease unrenewed for its duration,
#: checking every RETRY_S; one more poll interval for the loop to act.
FAILOVER_BOUND_S = DURATION_S + RETRY_S + 3


@pytest.fixture
def lease_rights(kubectl: Kubectl, namespace: str) -> str:
    """The shipped Role and RoleBinding of the operator's own namespace, in ``namespace``."""
    docs = list(yaml.safe_load_all((ROOT / "manifests/rbac/role_operator.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    kubectl.apply(*docs)
    wait_for(
        lambda: kubectl("auth", "can-i", "update", f"leases/{LEASE}", "-n", namespace,
                        f"--as={SA_USER}", check=False).strip() == "yes",
        30,
        "the Lease rights",
    )  # fmt: skip
    return LEASE


def _holder(kubectl: Kubectl, namespace: str) -> str:
    out = kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    try:
        return str(json.loads(out)["spec"].get("holderIdentity") or "")
    except (ValueError, KeyError):
        return ""


class Replica:
    """One operator process and its /readyz (kopf's /healthz caches probes for 10 s)."""

    def __init__(self, start: Callable[..., OperatorProcess], lease: str) -> None:
        self.ready_port = free_port()
        self.op = start(lease=lease, JQO_READY_PORT=str(self.ready_port),
                        JQO_LISTEN_ADDR="127.0.0.1")  # fmt: skip

    def loops(self) -> int | None:
        """JobQueue loops acting in this process (0 on a standby), None if not answering."""
        try:
            url = f"http://127.0.0.1:{self.ready_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return int(json.loads(resp.read())["jobqueues"])
        except (OSError, ValueError, KeyError):
            return None


def _leader_and_standby(
    start: Callable[..., OperatorProcess], lease: str
) -> tuple[Replica, Replica]:
    a, b = Replica(start, lease), Replica(start, lease)
    wait_for(lambda: {a.loops(), b.loops()} == {0, 1}, 60, "one replica acts, one stands by")
    return (a, b) if a.loops() == 1 else (b, a)


def _setup(kubectl: Kubectl, namespace: str, redis_url: str) -> None:
    kubectl.apply(
        deployment("worker", namespace, replicas=1),
        jobqueue("emails", namespace, "worker", redis_url, pollingIntervalSeconds=1,
                 maxReplicas=30, scaleUp={"queueDepth": 10, "cooldownSeconds": 1},
                 scaleDown={"queueDepth": 2}),
    )  # fmt: skip


def test_one_leader_acts_and_a_sigkilled_leader_is_replaced_within_the_lease(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    lease_rights: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    _setup(kubectl, namespace, redis_url)
    leader, standby = _leader_and_standby(start_operator, lease_rights)
    assert _holder(kubectl, namespace)
    fill(redis_url, "emails:jobs", 15)
    wait_for(lambda: kubectl.replicas("worker", namespace) >= 2, 10, "a scale-up")
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert (leader.loops(), standby.loops()) == (1, 0), "both replicas act"
        time.sleep(0.3)
    assert "Scaled Deployment" in leader.op.output()
    assert "Scaled Deployment" not in standby.op.output()

    killed_holder = _holder(kubectl, namespace)
    leader.op.kill()  # SIGKILL: no release, the Lease must expire
    killed = time.monotonic()
    # Read the count only once the leader is dead: a busy leader may still be
    # scaling up, and its last patch must not pass for the standby's.
    before = kubectl.replicas("worker", namespace)
    fill(redis_url, "emails:jobs", 40)
    wait_for(
        lambda: kubectl.replicas("worker", namespace) > before,
        FAILOVER_BOUND_S,
        "the standby takes over and scales",
    )
    failover_s = time.monotonic() - killed
    print(f"\nfail-over after SIGKILL of the leader: {failover_s:.1f} s "
          f"(Lease {DURATION_S} s, retry {RETRY_S} s)")  # fmt: skip
    assert standby.loops() == 1
    assert _holder(kubectl, namespace) not in ("", killed_holder)
    assert "Scaled Deployment" in standby.op.output()


def test_a_clean_stop_releases_the_lease_at_once(
    kubectl: Kubectl,
    namespace: str,
    redis_url: str,
    lease_rights: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    _setup(kubectl, namespace, redis_url)
    leader, standby = _leader_and_standby(start_operator, lease_rights)
    leader.op.stop()  # SIGTERM: kopf's cleanup empties the holder
    # Well inside the Lease's duration: only a release explains a take-over this soon.
    wait_for(lambda: standby.loops() == 1, DURATION_S - 2, "the standby takes over")
