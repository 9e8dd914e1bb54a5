"""The example worker Deployments use settings and options the worker really has.

The first version of these examples passed `--queue` (the CLI has `--queues`) and
a `JQW_REDIS_PASSWORD` no setting read: every example worker would have exited at
start. This keeps the examples and the runtime in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from jobqueue_worker.cli import app
from jobqueue_worker.settings import WorkerSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "workers.yaml"


def deployments() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d]
    found = [d for d in docs if d["kind"] == "Deployment"]
    assert found, "no worker Deployment in the examples"
    return found


def container(dep: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"]
    return containers[0]


def worker_options() -> set[str]:
    command = typer.main.get_command(app)
    worker = command.commands["worker"]  # type: ignore[attr-defined]
    return {opt for param in worker.params for opt in getattr(param, "opts", [])}


@pytest.mark.parametrize("dep", deployments(), ids=lambda d: d["metadata"]["name"])
def test_args_are_real_worker_options(dep: dict[str, Any]) -> None:
    args = container(dep).get("args", [])
    assert args[:1] == ["worker"]
    unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in worker_options()]
    assert unknown == []


@pytest.mark.parametrize("dep", deployments(), ids=lambda d: d["metadata"]["name"])
def test_every_jqw_variable_is_a_setting(dep: dict[str, Any]) -> None:
    fields = {f"JQW_{name.upper()}" for name in WorkerSettings.model_fields}
    names = [e["name"] for e in container(dep).get("env", []) if e["name"].startswith("JQW_")]
    assert [n for n in names if n not in fields] == []


@pytest.mark.parametrize("dep", deployments(), ids=lambda d: d["metadata"]["name"])
def test_probes_and_monitoring_label(dep: dict[str, Any]) -> None:
    spec = container(dep)
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports["http"] == WorkerSettings.model_fields["http_port"].default
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels.get("jobqueue.dev/worker") == "true"  # the PodMonitor selects on it
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > WorkerSettings.model_fields["grace_period_s"].default


@pytest.mark.parametrize("dep", deployments(), ids=lambda d: d["metadata"]["name"])
def test_replicas_left_to_the_operator_and_tmp_writable(dep: dict[str, Any]) -> None:
    # A `replicas` here would be re-applied by GitOps tools over the operator's count.
    assert "replicas" not in dep["spec"]
    pod = dep["spec"]["template"]["spec"]
    assert container(dep)["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container(dep)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Isolated jobs need a temporary directory; a size limit keeps a runaway job in check.
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]
