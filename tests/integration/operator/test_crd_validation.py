"""The API server itself rejects bad JobQueues, with messages a person understands.

The table is invalid_jobqueues.yaml (also checked against the operator's own
parsing in tests/unit/operator). Each case is sent with a server-side dry run and
kubectl's default strict field validation, so unknown fields (an inline password,
a target namespace) are errors too, not silently pruned. The `policy` cases are
refused by the shipped ValidatingAdmissionPolicy (manifests/admission/policy.yaml),
bound here to this test's namespace with the table's defaults as its ConfigMap.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Kubectl

from jobqueue_devkit import binaries
from jobqueue_devkit.controlplane import CRDS_DIR, ControlPlane
from jobqueue_devkit.errors import DevkitError

pytestmark = [pytest.mark.k8s]

TABLE = yaml.safe_load((Path(__file__).with_name("invalid_jobqueues.yaml")).read_text())
ADMISSION = Path(__file__).resolve().parents[3] / "manifests" / "admission"
DEFAULTS_CONFIGMAP = "jobqueue-operator-defaults"


def merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _manifest(name: str, spec: dict[str, Any], namespace: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "jobqueue.dev/v1alpha1",
            "kind": "JobQueue",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def test_there_are_at_least_fifty_cases() -> None:
    assert len(TABLE["cases"]) >= 50
    assert sum(case.get("layer") == "policy" for case in TABLE["cases"]) >= 10


def _policy_for(namespace: str) -> dict[str, Any]:
    """The shipped policy's rules under a name of this module's own (see the fixture)."""
    policy: dict[str, Any] = yaml.safe_load((ADMISSION / "policy.yaml").read_text())
    policy["metadata"]["name"] = f"jobqueue-defaults-{namespace}"
    return policy


def _binding_for(namespace: str) -> dict[str, Any]:
    """The shipped binding, limited to ``namespace`` and fed that namespace's ConfigMap."""
    binding: dict[str, Any] = yaml.safe_load((ADMISSION / "binding.yaml").read_text())
    binding["metadata"]["name"] = f"jobqueue-defaults-{namespace}"
    binding["spec"]["policyName"] = f"jobqueue-defaults-{namespace}"
    binding["spec"]["paramRef"]["namespace"] = namespace
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    return binding


def _refused(kubectl: Kubectl, namespace: str, name: str, spec: dict[str, Any]) -> str:
    out = kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=_manifest(name, spec, namespace), check=False,
    )  # fmt: skip
    return "" if "created" in out else out


BIND_ATTEMPTS = 4
TAKES_EFFECT_S = 20.0


@pytest.fixture(scope="module")
def policy_kubectl() -> Iterator[Kubectl]:
    """kubectl on a control plane of this module's own.

    Once any policy with ConfigMap parameters was deleted together with its
    ConfigMap and binding (the chart tests install and uninstall the shipped one),
    this API server stops finding the parameters of every new binding: they fail
    open and admit everything. A fresh plane keeps the table's verdicts about the
    policy's rules, not about that server state.
    """
    try:
        plane = ControlPlane(binaries.ensure_binaries()).start(CRDS_DIR)
    except DevkitError as exc:
        pytest.fail(f"a second control plane could not start: {exc}", pytrace=False)
    try:
        yield Kubectl(plane)
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def defaults_policy(policy_kubectl: Kubectl) -> Iterator[str]:
    """The shipped policy, bound to a namespace of its own with the table's defaults.

    One namespace, policy and binding for the whole module. This API server can
    miss a binding's parameters for good once a policy of the same name was
    deleted and made again (the chart tests install and uninstall the shipped
    one): the binding then finds no ConfigMap and, failing open, lets everything
    through. So the module binds the shipped rules under a policy name of its own,
    the ConfigMap goes first, and a binding that never takes effect is made again.
    """
    kubectl = policy_kubectl
    namespace = f"t-policy-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    kubectl.apply(_policy_for(namespace))
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": DEFAULTS_CONFIGMAP, "namespace": namespace},
            "data": TABLE["defaults"],
        }
    )
    binding = _binding_for(namespace)
    probe = merge(TABLE["base"], {"minReplicas": 50})
    seen = ""
    for _ in range(BIND_ATTEMPTS):
        kubectl.apply(binding)
        # A new binding takes effect once the API server's informers saw it (until
        # then it lets everything through).
        deadline = time.monotonic() + TAKES_EFFECT_S
        while "MAX_WORKERS" not in (seen := _refused(kubectl, namespace, "probe", probe)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        else:
            break
        kubectl("delete", "validatingadmissionpolicybinding", binding["metadata"]["name"])
        time.sleep(1)
    else:
        pytest.fail(f"the policy never took effect: {seen.strip()}", pytrace=False)
    yield namespace
    for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
        kubectl("delete", kind, f"jobqueue-defaults-{namespace}", "--ignore-not-found")
    kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_base_is_accepted(policy_kubectl: Kubectl, defaults_policy: str) -> None:
    policy_kubectl(
        "create", "--dry-run=server", "-f", "-",
        stdin=_manifest("ok", TABLE["base"], defaults_policy),
    )  # fmt: skip


def test_api_server_rejects_every_case_with_its_message(
    policy_kubectl: Kubectl, defaults_policy: str
) -> None:
    """One namespace, one binding, every case of the table (the set-up is the slow part)."""
    wrong = []
    for case in TABLE["cases"]:
        spec = merge(TABLE["base"], case["spec"])
        message = _refused(policy_kubectl, defaults_policy, case["name"], spec)
        print(f"\n{case['name']}: {message.strip()}")
        if case["expect"] not in message:
            wrong.append(f"{case['name']}: expected {case['expect']!r}, got {message.strip()!r}")
    assert not wrong, "\n".join(wrong)


def test_the_policy_follows_the_configmap(policy_kubectl: Kubectl, defaults_policy: str) -> None:
    """Raise MAX_WORKERS and the same JobQueue is accepted: the defaults are the parameters."""
    spec = merge(TABLE["base"], {"minReplicas": 50})
    assert "MAX_WORKERS" in _refused(policy_kubectl, defaults_policy, "fifty", spec)
    policy_kubectl("patch", "configmap", DEFAULTS_CONFIGMAP, "-n", defaults_policy, "--type=merge",
            "-p", '{"data": {"MAX_WORKERS": "60"}}')  # fmt: skip
    deadline = time.monotonic() + 30
    while _refused(policy_kubectl, defaults_policy, "fifty", spec):
        assert time.monotonic() < deadline, "the policy kept the old MAX_WORKERS"
        time.sleep(0.5)
    restore = {"data": {"MAX_WORKERS": TABLE["defaults"]["MAX_WORKERS"]}}
    policy_kubectl("patch", "configmap", DEFAULTS_CONFIGMAP, "-n", defaults_policy, "--type=merge",
            "-p", yaml.safe_dump(restore))  # fmt: skip
    while "MAX_WORKERS" not in _refused(policy_kubectl, defaults_policy, "fifty", spec):
        assert time.monotonic() < deadline + 30, "the policy kept MAX_WORKERS 60"
        time.sleep(0.5)


def test_without_the_configmap_the_policy_lets_jobqueues_through(
    policy_kubectl: Kubectl, defaults_policy: str
) -> None:
    """Fail-open on a missing ConfigMap: admission never blocks every JobQueue write."""
    spec = merge(TABLE["base"], {"minReplicas": 50})
    policy_kubectl("delete", "configmap", DEFAULTS_CONFIGMAP, "-n", defaults_policy)
    deadline = time.monotonic() + 30
    while _refused(policy_kubectl, defaults_policy, "fifty", spec):
        assert time.monotonic() < deadline, "still judged with no ConfigMap"
        time.sleep(0.5)
    policy_kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": DEFAULTS_CONFIGMAP, "namespace": defaults_policy},
            "data": TABLE["defaults"],
        }
    )


def test_printer_columns_like_kedas_and_no_all_category(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "-f", "-", stdin=_manifest("cols", TABLE["base"], namespace))
    header = kubectl("get", "jq", "-n", namespace).splitlines()[0].split()
    assert header == [
        "NAME", "TARGET", "MIN", "MAX", "DESIRED", "READY", "ACTIVE", "FALLBACK", "PAUSED", "AGE",
    ]  # fmt: skip
    wide = kubectl("get", "jq", "-n", namespace, "-o", "wide").splitlines()[0].split()
    assert wide[-6:] == ["CURRENT", "DEPTH", "OLDEST", "LAST", "ACTION", "REASON"]
    defaults = kubectl("get", "jq", "cols", "-n", namespace, "-o", "jsonpath={.spec}")
    assert '"pollingIntervalSeconds":5' in defaults
    assert '"maxStep":3' in defaults
    # `kubectl get all` (and so `kubectl delete all --all`) leaves JobQueues alone.
    assert "jobqueue" not in kubectl("get", "all", "-n", namespace, "-o", "name")


def test_deprecated_priority_class_is_accepted_with_a_warning(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("apply", "-f", str(ADMISSION / "deprecations.yaml"))
    spec = merge(TABLE["base"], {"priorityClass": "low"})
    assert "created" in kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=_manifest("old", spec, namespace)
    )
    # kubectl prints warnings on stderr; --warnings-as-errors brings them into the output.
    deadline = time.monotonic() + 30
    while True:
        out = kubectl("create", "--dry-run=server", "--warnings-as-errors", "-f", "-",
                      stdin=_manifest("old", spec, namespace), check=False)  # fmt: skip
        if "spec.priorityClass is deprecated" in out:
            break
        assert time.monotonic() < deadline, f"no deprecation warning: {out}"
        time.sleep(0.5)
    assert "rename it to spec.priorityTier" in out
    renamed = merge(TABLE["base"], {"priorityTier": "low"})
    out = kubectl("create", "--dry-run=server", "--warnings-as-errors", "-f", "-",
                  stdin=_manifest("new", renamed, namespace), check=False)  # fmt: skip
    assert "created" in out, out
