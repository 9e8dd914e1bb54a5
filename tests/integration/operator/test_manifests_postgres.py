"""manifests/postgres (the schema Job and the migrator) installs under "restricted" Pod Security."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from operator_harness import Kubectl

pytestmark = [pytest.mark.k8s]

ROOT = Path(__file__).resolve().parents[3]
POSTGRES = ROOT / "manifests" / "postgres"


def test_postgres_manifests_apply_without_pod_security_warnings(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(ROOT / "manifests" / "examples" / "namespace.yaml"))
    out = kubectl("apply", "-k", str(POSTGRES), check=False)
    assert "deployment.apps/jobqueue-migrator" in out, out
    assert "job.batch/jobqueue-db-upgrade" in out, out
    assert "violate PodSecurity" not in out
    assert "forbidden" not in out


def test_migrator_runs_the_migrator_with_the_dsn_from_a_secret() -> None:
    doc = yaml.safe_load((POSTGRES / "migrator.yaml").read_text())
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "migrator"
    env = {e["name"]: e for e in container["env"]}
    assert env["JQW_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]["name"] == "jobqueue-postgres"
    assert "JQW_REDIS_URL" in env
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    job = yaml.safe_load((POSTGRES / "db-upgrade-job.yaml").read_text())
    (upgrade,) = job["spec"]["template"]["spec"]["containers"]
    assert upgrade["args"] == ["db", "upgrade"]
