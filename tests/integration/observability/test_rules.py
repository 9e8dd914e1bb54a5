"""The PrometheusRule: ``promtool check rules`` on its ``spec.groups``, ``promtool
test rules`` on the cases in ``rules/``, and the shape every alert must have.

Shape: ``for:``, a ``severity`` of warning or critical, summary, description and a
``runbook_url`` whose anchor is a heading of docs/runbook.md; every
(alertname, severity) fires in some test case and every alertname has a case
where it must stay silent; every metric a rule reads is in docs/metrics.md
(planned ones included).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from observability_helpers import (
    MONITORING,
    ROOT,
    base_name,
    catalogue,
    catalogued_names,
    promql_metric_names,
    rule_groups,
    run_promtool,
)

RULE_FILE = MONITORING / "prometheusrule.yaml"
CASES = Path(__file__).resolve().parent / "rules"
RUNBOOK = ROOT / "docs" / "runbook.md"


def _rules() -> list[dict[str, Any]]:
    groups: Any = rule_groups(RULE_FILE)["groups"]
    return [rule for g in groups for rule in g["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The extracted rules file next to copies of the test cases."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(RULE_FILE), sort_keys=False))
    for case in CASES.glob("*_test.yaml"):
        shutil.copy(case, tmp_path / case.name)
    return tmp_path


def test_promtool_check_rules(rules_dir: Path) -> None:
    result = run_promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.code == 0, result.output
    assert f"SUCCESS: {len(_rules())} rules found" in result.output


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check can fail: a rule with a PromQL syntax error is refused."""
    broken = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum by (a (b)"}]}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(broken))
    result = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.code != 0


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*_test.yaml")))
def test_promtool_test_rules(rules_dir: Path, case: str) -> None:
    result = run_promtool("test", "rules", case, cwd=rules_dir)
    assert result.code == 0, result.output
    assert "SUCCESS" in result.output


def _runbook_anchors() -> set[str]:
    """GitHub's heading slugs: lower case, spaces to dashes, punctuation dropped."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_every_alert_has_for_severity_annotations_and_a_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "a `for:` duration is required"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    notes = rule["annotations"]
    assert notes["summary"].strip()
    assert notes["description"].strip()
    url = notes["runbook_url"]
    assert url.startswith("docs/runbook.md#"), url
    anchor = url.split("#", 1)[1]
    assert anchor == rule["alert"].lower()
    assert anchor in _runbook_anchors(), f"docs/runbook.md has no section #{anchor}"


def test_warning_and_critical_pairs_differ_only_in_threshold() -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in _alerts():
        by_name.setdefault(rule["alert"], []).append(rule)
    for name, rules in by_name.items():
        severities = sorted(r["labels"]["severity"] for r in rules)
        assert severities in (["warning"], ["critical"], ["critical", "warning"]), name


def _cases() -> list[dict[str, Any]]:
    out = []
    for path in sorted(CASES.glob("*_test.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["rules.yaml"], path
        for test in doc["tests"]:
            out.extend(test.get("alert_rule_test", []))
    return out


def test_every_alert_fires_in_a_case_and_stays_silent_in_another() -> None:
    fired = {
        (c["alertname"], a["exp_labels"]["severity"]) for c in _cases() for a in c["exp_alerts"]
    }
    silent = {c["alertname"] for c in _cases() if not c["exp_alerts"]}
    for rule in _alerts():
        assert (rule["alert"], rule["labels"]["severity"]) in fired, rule["alert"]
        assert rule["alert"] in silent, f"{rule['alert']}: no case where it must not fire"


def test_rules_read_only_catalogued_metrics() -> None:
    known = catalogued_names(include_planned=True)
    for rule in _rules():
        unknown = {base_name(n, known) for n in promql_metric_names(rule["expr"])} - known
        assert not unknown, (
            f"{rule.get('alert') or rule.get('record')}: not in docs/metrics.md: {unknown}"
        )


def test_planned_metrics_are_marked_in_the_rules() -> None:
    """A rule on a metric nobody exports yet says so in a ``PLANNED`` comment."""
    planned = {e.name for e in catalogue() if e.planned}
    text = RULE_FILE.read_text()
    marked = "\n".join(line for line in text.splitlines() if "PLANNED" in line)
    for name in planned:
        if name in text:
            assert name in marked, f"{name} is planned: mark its rule with a PLANNED comment"


def test_the_metric_name_lexer() -> None:
    expr = (
        'sum by (namespace, queue) (rate(jobqueue_jobs_total{outcome=~"a|b"}[5m])) '
        "/ on (queue) group_left max(x_bytes offset 5m) > 0.5 and y:z:rate5m"
    )
    assert promql_metric_names(expr) == {"jobqueue_jobs_total", "x_bytes", "y:z:rate5m"}


def test_the_documented_threshold_overlay_builds_and_changes_the_rule(tmp_path: Path) -> None:
    """The kustomize overlay in docs/metrics.md, built against the real component."""
    import os
    import subprocess

    doc = (ROOT / "docs" / "metrics.md").read_text()
    block = doc.split("<!-- overlay-example -->", 1)[1].split("<!-- /overlay-example -->", 1)[0]
    overlay = yaml.safe_load(block.strip().removeprefix("```yaml").removesuffix("```"))
    target = tmp_path / "my-monitoring"
    target.mkdir()
    overlay["resources"] = [os.path.relpath(MONITORING, target)]
    (target / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    out = subprocess.run(
        ["kubectl", "kustomize", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (rule,) = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["namespace"] == "monitoring"
    first = rule["spec"]["groups"][0]["rules"][0]
    assert first["alert"] == "JobQueueDepthHigh"
    assert first["labels"]["severity"] == "warning"
    assert first["expr"].rstrip().endswith(">= 1000")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    assert run_promtool("check", "rules", "rules.yaml", cwd=tmp_path).code == 0
