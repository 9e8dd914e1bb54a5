"""The API server itself rejects bad JobQueues, with messages a person understands.

The table is invalid_jobqueues.yaml (also checked against the pydantic model in
tests/unit/operator). Each case is sent with a server-side dry run and kubectl's
default strict field validation, so unknown fields (an inline password, a target
namespace) are errors too, not silently pruned.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Kubectl

pytestmark = [pytest.mark.k8s]

TABLE = yaml.safe_load((Path(__file__).with_name("invalid_jobqueues.yaml")).read_text())


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


def test_there_are_at_least_twelve_cases() -> None:
    assert len(TABLE["cases"]) >= 12


def test_the_base_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=_manifest("ok", TABLE["base"], namespace)
    )


@pytest.mark.parametrize("case", TABLE["cases"], ids=lambda c: c["name"])
def test_api_server_rejects(kubectl: Kubectl, namespace: str, case: dict[str, Any]) -> None:
    spec = merge(TABLE["base"], case["spec"])
    message = kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=_manifest(case["name"], spec, namespace), check=False,
    )  # fmt: skip
    print(f"\n{case['name']}: {message.strip()}")
    assert "created" not in message, f"{case['name']} was accepted"
    assert case["expect"] in message


def test_kubectl_explain_teaches_the_fields(kubectl: Kubectl) -> None:
    # The API server publishes a new CRD's OpenAPI a few seconds after it is served.
    out = ""
    for _ in range(60):
        out = kubectl("explain", "jobqueue.spec.scaleUp", check=False)
        if "DESCRIPTION" in out:
            break
        time.sleep(0.5)
    assert "Scale up when the depth reaches queueDepth OR" in out
    for field in ("queueDepth", "queueLatencySeconds", "cooldownSeconds", "maxStep"):
        assert field in out
    assert "password never goes here" in kubectl("explain", "jobqueue.spec.redis")


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "-f", "-", stdin=_manifest("cols", TABLE["base"], namespace))
    header = kubectl("get", "jq", "-n", namespace, "-o", "wide").splitlines()[0].split()
    assert header == [
        "NAME", "TARGET", "CURRENT", "DESIRED", "DEPTH", "OLDEST", "READY", "LAST", "ACTION",
        "REASON", "MIN", "MAX", "AGE",
    ]  # fmt: skip
    defaults = kubectl("get", "jq", "cols", "-n", namespace, "-o", "jsonpath={.spec}")
    assert '"pollingIntervalSeconds":5' in defaults
    assert '"maxStep":3' in defaults
