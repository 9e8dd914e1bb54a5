"""The Grafana dashboard: valid JSON with the panels the issue asks for, PromQL that
parses (each expression becomes a throwaway recording rule for ``promtool check
rules``) and reads only catalogued metrics; and the kustomize wrapper that turns
it into a ConfigMap Grafana's sidecar picks up."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from observability_helpers import (
    MONITORING,
    ROOT,
    base_name,
    catalogued_names,
    promql_metric_names,
    run_promtool,
)

DASHBOARD = MONITORING / "dashboard.json"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every annotation query."""
    out = []
    for p in _panels():
        for t in p["targets"]:
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for a in _dashboard()["annotations"]["list"]:
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", a["expr"]))
    return out


def _concrete(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus accepts."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?[a-z_]+\}?", ".*", expr)


def test_every_expression_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:expr_{i}:check", "expr": _concrete(expr)}
        for i, (_, expr) in enumerate(_exprs())
    ]
    (tmp_path / "dash.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = run_promtool("check", "rules", "dash.yaml", cwd=tmp_path)
    assert result.code == 0, result.output
    assert f"SUCCESS: {len(rules)} rules found" in result.output


def test_a_broken_expression_would_be_caught(tmp_path: Path) -> None:
    rules = [{"record": "dashboard:broken:check", "expr": _concrete("rate(x[$__rate_interval]")}]
    (tmp_path / "dash.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    assert run_promtool("check", "rules", "dash.yaml", cwd=tmp_path).code != 0


def test_panels_read_only_catalogued_metrics() -> None:
    known = catalogued_names(include_planned=True)
    unknown = {}
    for where, expr in _exprs():
        names = {base_name(n, known) for n in promql_metric_names(_concrete(expr))}
        if names - known:
            unknown[where] = sorted(names - known)
    assert unknown == {}
    for v in _dashboard()["templating"]["list"]:
        if v["type"] == "query":
            (metric,) = re.findall(r"label_values\(([a-z_:]+)", v["definition"])
            assert metric in known, v["name"]


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    text = " ".join(f"{where} {expr}" for where, expr in _exprs())
    for metric in (
        # depth by priority
        'jobqueue_operator_queue_waiting{namespace=~"$namespace", queue=~"$queue"}',
        "jobqueue_operator_queue_oldest_age_seconds",
        "jobqueue_jobs_total",  # throughput and errors
        "jobqueue_retries_total",
        "jobqueue_operator_current_replicas",
        "jobqueue_operator_desired_replicas",
        "jobqueue_in_flight",  # workers
        "process_resident_memory_bytes",  # their memory
    ):
        assert metric in text, metric
    scale = [a for a in _dashboard()["annotations"]["list"] if "expr" in a]
    assert {a["name"] for a in scale} == {"Scale up", "Scale down"}
    assert all("jobqueue_operator_scale_actions_total" in a["expr"] for a in scale)


def test_panels_are_well_formed() -> None:
    dash = _dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dash["uid"] == "jobqueue-overview"
    for p in _panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["description"].strip(), p["title"]
        assert p["targets"], p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "namespace", "queue", "jobqueue"}


def _kustomize(path: Path) -> list[dict[str, Any]]:
    try:
        out = subprocess.run(
            ["kubectl", "kustomize", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except FileNotFoundError:
        pytest.skip("kubectl not on PATH")
    return [d for d in yaml.safe_load_all(out) if d]


def test_kustomize_wraps_the_dashboard_in_a_sidecar_configmap() -> None:
    docs = _kustomize(MONITORING)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["name"] == "jobqueue-dashboard"  # no hash suffix
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["jobqueue.json"]) == _dashboard()
    (sm,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True


def test_monitoring_is_not_part_of_the_default_install() -> None:
    top = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    assert not any("monitoring" in r for r in top.get("resources", []))
    kinds = {d["kind"] for d in _kustomize(ROOT / "manifests")}
    assert not kinds & {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
