"""manifests/webui applies on the real API server under the "restricted" Pod Security
Standard, and its RBAC can read JobQueues and nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.k8s]

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.usefixtures("kubeconfig")
def test_webui_manifests_apply_restricted_and_read_only(control_plane: Any) -> None:
    control_plane.kubectl("apply", "-f", str(ROOT / "manifests" / "examples" / "namespace.yaml"))
    out = control_plane.kubectl(
        "apply", "-k", str(ROOT / "manifests" / "webui"), "--dry-run=server", "-o", "name"
    )
    assert "deployment.apps/jobqueue-web" in out
    assert "service/jobqueue-web" in out
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "webui" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list"}
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"jobqueues"}
    deploy = yaml.safe_load((ROOT / "manifests" / "webui" / "deployment.yaml").read_text())
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert "--admin-token-file=/etc/jobqueue-web/admin" in container["args"]
    assert "--host=0.0.0.0" in container["args"]  # ... so the tokens are required
