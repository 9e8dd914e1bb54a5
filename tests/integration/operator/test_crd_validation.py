"""The API server itself rejects bad JobQueues, with messages a person understands.

The table is invalid_jobqueues.yaml (also checked against the pydantic model in
tests/unit/operator). Each case is sent with a server-side dry run and kubectl's
default strict field validation, so unknown fields (an inline password, a target
namespace) are errors too, not silently pruned.
"""

from __future__ import annotations

import copy
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
