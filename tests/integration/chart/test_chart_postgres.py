"""The chart's optional PostgreSQL part: the migrator Deployment, the schema hook Job
and the prune CronJob, rendered only with `postgres.enabled`, hardened like the
chart's other workloads, and shaped like manifests/postgres.

The server-side dry-run of these objects is the all-on case of test_chart_dry_run.py
(values-all-on.yaml turns postgres on, with a prune schedule).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from chart_harness import ALL_ON, CHART, ROOT, Doc, Helm, find, one, pod_spec

pytestmark = [pytest.mark.helm]

POSTGRES_OBJECTS = {
    ("Deployment", "jobqueue-migrator"),
    ("Job", "jobqueue-db-upgrade"),
    ("CronJob", "jobqueue-db-prune"),
    ("NetworkPolicy", "jobqueue-postgres-clients"),
}
DSN_FROM_SECRET = {
    "name": "JQW_POSTGRES_DSN",
    "valueFrom": {"secretKeyRef": {"name": "jq-postgres", "key": "url"}},
}
WORKER = "workers[0].name=web,workers[0].queues[0]=web,workers[0].handlers=app.jobs"


def container_of(pod: Doc) -> Doc:
    (container,) = pod["containers"]
    return container  # type: ignore[no-any-return]


def pod_labels(deployment: Doc) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def env_names(container: Doc) -> list[str]:
    return [e["name"] for e in container["env"]]


def assert_restricted(pod: Doc) -> None:
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = container_of(pod)
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    # The DSN and the Redis password reach the process only through the environment.
    assert not any("postgres" in a or "redis://" in a for a in container["args"])


def test_off_by_default_nothing_of_postgres_renders(helm: Helm) -> None:
    docs = helm.template(sets=[WORKER, "networkPolicy.enabled=true"])
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert names & POSTGRES_OBJECTS == set()
    worker = container_of(pod_spec(one(docs, "Deployment", "web-worker")))
    assert "JQW_POSTGRES_DSN" not in env_names(worker)
    # A prune schedule alone turns nothing on.
    docs = helm.template(sets=["postgres.prune.schedule=0 3 * * *"])
    assert find(docs, "CronJob") == []
    assert find(docs, "Job") == []


def test_all_on_renders_the_migrator_the_hook_job_and_the_cronjob(helm: Helm) -> None:
    docs = helm.template(ALL_ON, release="jq", namespace="ops")
    migrator = one(docs, "Deployment", "jobqueue-migrator")
    assert migrator["metadata"]["namespace"] == "jq-chart-a"
    assert migrator["spec"]["replicas"] == 3
    pod = pod_spec(migrator)
    assert_restricted(pod)
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    container = container_of(pod)
    assert container["image"] == "registry.example.com/jobqueue/jobqueue-worker:0.1.0-rc1"
    assert container["command"] == ["jobqueue"]
    assert container["args"] == [
        "migrator",
        "--json-logs",
        "--batch",
        "250",
        "--http-port",
        "8080",
    ]
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    scrape = one(docs, "PodMonitor", "jobqueue-migrator")
    assert scrape["metadata"]["namespace"] == "jq-chart-a"
    assert scrape["spec"]["selector"]["matchLabels"].items() <= pod_labels(migrator).items()
    assert scrape["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert container["env"][0] == DSN_FROM_SECRET
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JQW_REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@redis.jq-chart-a.svc:6379/0"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "512Mi"}
    selector = migrator["spec"]["selector"]["matchLabels"]
    assert selector.items() <= migrator["spec"]["template"]["metadata"]["labels"].items()

    job = one(docs, "Job", "jobqueue-db-upgrade")
    assert job["metadata"]["annotations"] == {
        "helm.sh/hook": "pre-install,pre-upgrade",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    assert job["spec"]["backoffLimit"] == 3
    job_pod = pod_spec(job)
    assert_restricted(job_pod)
    assert job_pod["restartPolicy"] == "OnFailure"
    assert container_of(job_pod)["args"] == ["db", "upgrade"]
    assert container_of(job_pod)["env"] == [DSN_FROM_SECRET]
    assert container_of(job_pod)["resources"]["requests"] == {"cpu": "20m", "memory": "32Mi"}

    cron = one(docs, "CronJob", "jobqueue-db-prune")
    assert cron["spec"]["schedule"] == "17 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    cron_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert_restricted(cron_pod)
    assert container_of(cron_pod)["args"] == ["db", "prune", "--older-than-days", "14"]
    assert container_of(cron_pod)["env"] == [DSN_FROM_SECRET]


def test_workers_get_the_dsn_from_the_secret_when_enabled(helm: Helm) -> None:
    docs = helm.template(ALL_ON, release="jq", namespace="ops")
    for name in ("webhooks-worker", "email-worker"):
        container = container_of(pod_spec(one(docs, "Deployment", name)))
        assert DSN_FROM_SECRET in container["env"], name


def test_network_policy_lets_the_postgres_clients_reach_postgres_and_redis_only(
    helm: Helm,
) -> None:
    docs = helm.template(ALL_ON, release="jq", namespace="ops")
    policy = one(docs, "NetworkPolicy", "jobqueue-postgres-clients")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # In: only the migrator's metrics port, from the scrapers networkPolicy.metricsFrom names.
    (scrape,) = policy["spec"]["ingress"]
    assert scrape["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert scrape["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 5432, 6432, 6379, 6380}
    (instance, component) = policy["spec"]["podSelector"]["matchExpressions"]
    assert (instance["key"], instance["values"]) == ("app.kubernetes.io/instance", ["jq"])
    assert component["key"] == "app.kubernetes.io/component"
    assert set(component["values"]) == {"migrator", "db-upgrade", "db-prune"}
    # Every Pod it names carries the labels it selects on.
    migrator_labels = one(docs, "Deployment", "jobqueue-migrator")["spec"]["template"]["metadata"]
    assert migrator_labels["labels"]["app.kubernetes.io/component"] in component["values"]
    # The operator never talks to PostgreSQL, so its own policy does not open the port.
    operator = one(docs, "NetworkPolicy", "jq-jobqueue-operator")
    operator_ports = {p["port"] for r in operator["spec"]["egress"] for p in r.get("ports", [])}
    assert 5432 not in operator_ports
    # Metrics off: no port, no probe, no scrape, and no way in at all.
    docs = helm.template(sets=["postgres.enabled=true", "postgres.migrator.httpPort=0"])
    container = container_of(pod_spec(one(docs, "Deployment", "jobqueue-migrator")))
    assert "--http-port" not in container["args"]
    assert "ports" not in container
    assert "livenessProbe" not in container
    assert "ingress" not in one(docs, "NetworkPolicy", "jobqueue-postgres-clients")["spec"]
    # With networkPolicy.enabled off (it is on by default) there is no policy for them either.
    docs = helm.template(sets=["postgres.enabled=true", "networkPolicy.enabled=false"])
    assert find(docs, "NetworkPolicy") == []


def test_the_notes_name_the_migrator(helm: Helm) -> None:
    on = helm.ok("install", "x", str(CHART), "--dry-run=client", "--set", "postgres.enabled=true")
    assert "deploy/jobqueue-migrator" in on
    off = helm.ok("install", "x", str(CHART), "--dry-run=client")
    assert "jobqueue-migrator" not in off


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("postgres.enabled=yes", "enabled"),
        ("postgres.surprise=1", "surprise"),
        ("postgres.dsnSecret.name=Not_A_Name", "name"),
        ("postgres.dsnSecret.extra=1", "extra"),
        ("postgres.migrator.replicas=-1", "replicas"),
        ("postgres.migrator.batch=0", "batch"),
        ("postgres.migrator.httpPort=70000", "httpPort"),
        ("postgres.prune.args=--older-than-days", "args"),
        ("networkPolicy.postgresPorts[0]=70000", "postgresPorts"),
    ],
)
def test_a_wrong_postgres_value_fails_naming_the_field(
    helm: Helm, override: str, field: str
) -> None:
    result = helm.run("template", "x", str(CHART), "--set", override)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


def kustomize(path: str) -> list[Doc]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_the_chart_migrator_runs_what_manifests_postgres_runs(helm: Helm, tmp_path: Path) -> None:
    """The whole objects cannot be equal: the chart's labels and selector carry the
    release (two releases must not share Pods), it spells out the image's ENTRYPOINT
    and pull policy, and it gives /tmp an emptyDir like its other workloads. Everything
    else of the Pod (user, security, env, args, resources, grace) must be equal."""
    values = tmp_path / "pg.yaml"
    values.write_text(yaml.safe_dump({"postgres": {"enabled": True}}))
    docs = helm.template(values)
    plain = kustomize("manifests/postgres")
    for kind, name in (("Deployment", "jobqueue-migrator"), ("Job", "jobqueue-db-upgrade")):
        chart_doc, plain_doc = one(docs, kind, name), one(plain, kind, name)
        assert chart_doc["metadata"]["namespace"] == plain_doc["metadata"]["namespace"]
        chart_pod, plain_pod = pod_spec(chart_doc), pod_spec(plain_doc)
        chart_container = container_of(chart_pod)
        assert chart_container.pop("command") == ["jobqueue"]
        assert chart_container.pop("imagePullPolicy") == "IfNotPresent"
        assert chart_container.pop("volumeMounts") == [{"name": "tmp", "mountPath": "/tmp"}]
        assert chart_pod.pop("volumes")[0]["name"] == "tmp"
        assert chart_pod == plain_pod, f"{kind} {name}: the chart and manifests/postgres disagree"
    assert (
        one(docs, "Deployment", "jobqueue-migrator")["spec"]["replicas"]
        == one(plain, "Deployment", "jobqueue-migrator")["spec"]["replicas"]
    )
