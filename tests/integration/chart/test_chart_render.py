"""The chart renders what it promises: `helm lint --strict`, `helm template` with the
default values and with every option on, and values the schema refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_harness import ALL_ON, CHART, ROOT, Doc, Helm, find, one, pod_spec

pytestmark = [pytest.mark.helm]

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())


def operator_container(docs: list[Doc], name: str = "jobqueue-operator") -> Doc:
    (container,) = pod_spec(one(docs, "Deployment", name))["containers"]
    return container  # type: ignore[no-any-return]


def test_lint_strict_with_default_and_all_on_values(helm: Helm) -> None:
    out = helm.ok("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    out = helm.ok("lint", "--strict", str(CHART), "--values", str(ALL_ON))
    assert "0 chart(s) failed" in out


def test_helm_is_the_pinned_release(helm: Helm) -> None:
    assert helm.ok("version", "--template", "{{ .Version }}").strip() == "v4.3.2"


def test_default_render_is_the_hardened_operator(helm: Helm) -> None:
    docs = helm.template()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ConfigMap",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    dep = one(docs, "Deployment", "jobqueue-operator")
    assert dep["spec"]["replicas"] == 2
    pod = pod_spec(dep)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    selector = dep["spec"]["selector"]["matchLabels"]
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    container = operator_container(docs)
    assert container["image"] == f"jobqueue-operator:{CHART_META['appVersion']}"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        {
            "name": "webhook-tls",
            "secret": {"secretName": "jobqueue-operator-webhook-tls", "optional": True},
        },
    ]
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": "health"}
    assert ready["httpGet"] == {"path": "/readyz", "port": "ready"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081, "ready": 8082, "webhook": 9443}
    assert "--lease=jobqueue-operator" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JQO_DEFAULTS_CONFIGMAP"] == "jobqueue-system/jobqueue-operator-defaults"
    assert env["JQO_WEBHOOK_SERVICE"] == "jobqueue-system/jobqueue-operator-webhook"
    # The scaling defaults live in the ConfigMap the admission policy reads, not in env.
    assert not any(name.startswith("SCALE_") for name in env)
    defaults = one(docs, "ConfigMap", "jobqueue-operator-defaults")["data"]
    assert defaults["MAX_WORKERS"] == "10"
    assert "SCALE_UP_CPU_THRESHOLD" not in defaults
    (binding,) = [
        b
        for b in find(docs, "ValidatingAdmissionPolicyBinding")
        if b["spec"]["policyName"] == "jobqueue-defaults"
    ]
    assert binding["spec"]["paramRef"]["name"] == "jobqueue-operator-defaults"
    # No kopf peering any more: a Lease elects the acting replica.
    assert find(docs, "KopfPeering") == []
    assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]
    assert "--namespace=jobqueue-demo" in container["args"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    # Off by default: no workers, no JobQueues, no monitoring.
    for kind in ("JobQueue", "PodMonitor", "ServiceMonitor", "PrometheusRule"):
        assert find(docs, kind) == [], kind


def test_all_on_render_has_every_option(helm: Helm) -> None:
    docs = helm.template(ALL_ON, release="jq", namespace="ops")
    dep = one(docs, "Deployment", "jq-jobqueue-operator")
    assert dep["spec"]["replicas"] == 3
    pod = pod_spec(dep)
    assert pod["serviceAccountName"] == "jq-operator"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert pod["terminationGracePeriodSeconds"] == 40
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"example.com/scrape": "true"}
    container = operator_container(docs, "jq-jobqueue-operator")
    assert container["image"] == "registry.example.com/jobqueue/jobqueue-operator:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == [
        "--lease=jq-lease",
        "--liveness=http://0.0.0.0:9091/healthz",
        "--namespace=jq-chart-a",
        "--namespace=jq-chart-b",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JQO_METRICS_PORT"] == "9090"
    assert env["JQO_READY_PORT"] == "9092"
    assert env["JQO_WEBHOOK_PORT"] == "10443"
    assert env["JQO_DEFAULTS_CONFIGMAP"] == "ops/jq-jobqueue-operator-defaults"
    defaults = one(docs, "ConfigMap", "jq-jobqueue-operator-defaults")["data"]
    assert defaults["SCALE_UP_QUEUE_DEPTH"] == "200"
    assert defaults["SCALE_DOWN_COOLDOWN"] == "120"
    assert defaults["SCALE_UP_CPU_THRESHOLD"] == "80"
    assert defaults["SCALE_DOWN_MEMORY_THRESHOLD"] == "30"
    assert one(docs, "Service", "jq-jobqueue-operator-webhook")["spec"]["ports"][0]["port"] == 10443
    assert {
        "name": "webhook-tls",
        "secret": {"secretName": "jq-webhook-cert", "optional": True},
    } in pod["volumes"]
    rules = one(docs, "ClusterRole", "jq-jobqueue-operator")["rules"]
    granted = [(r["apiGroups"], r["resources"], r["verbs"]) for r in rules]
    assert (["example.com"], ["workerpools/scale"], ["get", "patch"]) in granted
    assert (["example.com"], ["workerpools"], ["get"]) in granted
    assert (["batch.example.org"], ["crunchers/scale"], ["get", "patch"]) in granted
    assert not any(r == ["crunchers"] for _, r, _ in granted), "readObject is off there"
    role = one(docs, "Role", "jq-jobqueue-operator-own")
    assert ["jq-lease"] in [r.get("resourceNames") for r in role["rules"]]
    assert ["jq-jobqueue-operator-defaults"] in [r.get("resourceNames") for r in role["rules"]]
    assert env["JQO_REDIS_MAX_CONNECTIONS"] == "16"
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live != ready
    assert (live["periodSeconds"], live["failureThreshold"]) == (15, 4)
    assert (ready["periodSeconds"], ready["failureThreshold"]) == (3, 1)
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "32Mi"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert one(docs, "ServiceAccount", "jq-operator")["metadata"]["annotations"] == {
        "example.com/owner": "platform"
    }
    # One RoleBinding per watched namespace, and the operator's own one in its namespace.
    assert {d["metadata"]["namespace"] for d in find(docs, "RoleBinding")} == {
        "jq-chart-a",
        "jq-chart-b",
        "ops",
    }
    policy = one(docs, "NetworkPolicy", "jq-jobqueue-operator")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    # The webhook and probe ports stay open to the API server and the kubelet.
    assert "from" not in policy["spec"]["ingress"][1]
    assert {p["port"] for p in policy["spec"]["ingress"][1]["ports"]} == {
        "health",
        "ready",
        "webhook",
    }
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 6443, 6379, 6380, 8443} <= egress_ports
    assert one(docs, "ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    workers = one(docs, "PodMonitor", "jq-jobqueue-operator-workers")
    assert workers["spec"]["selector"]["matchLabels"] == {"jobqueue.dev/worker": "true"}
    # The rules are manifests/monitoring's, unchanged (promtool checks those).
    original = yaml.safe_load(
        (ROOT / "manifests" / "monitoring" / "prometheusrule.yaml").read_text()
    )
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == original["spec"]
    assert rule["metadata"]["labels"]["role"] == "alert-rules"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_workers_have_no_replicas_and_a_size_limited_tmp(helm: Helm) -> None:
    docs = helm.template(ALL_ON, release="jq", namespace="ops")
    workers = [d for d in find(docs, "Deployment") if d["metadata"]["name"].endswith("-worker")]
    assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in workers} == {
        ("jq-chart-a", "webhooks-worker"),
        ("jq-chart-b", "email-worker"),
    }
    limits = {}
    for dep in workers:
        assert "replicas" not in dep["spec"], dep["metadata"]["name"]
        pod = pod_spec(dep)
        (container,) = pod["containers"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        (tmp,) = pod["volumes"]
        limits[dep["metadata"]["name"]] = tmp["emptyDir"]["sizeLimit"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["automountServiceAccountToken"] is False
        assert dep["spec"]["template"]["metadata"]["labels"]["jobqueue.dev/worker"] == "true"
    assert limits == {"webhooks-worker": "128Mi", "email-worker": "256Mi"}
    webhooks = one(docs, "JobQueue", "webhooks")
    assert webhooks["spec"]["scaleTargetRef"] == {"name": "webhooks-worker"}
    assert webhooks["spec"]["maxReplicas"] == 20
    assert webhooks["spec"]["redis"]["passwordSecretRef"] == {
        "name": "redis-auth",
        "key": "password",
    }
    email = one(docs, "JobQueue", "email")
    assert email["metadata"]["namespace"] == "jq-chart-b"
    assert email["spec"]["queues"] == ["email:processing", "email:sending"]
    assert email["spec"]["redis"]["port"] == 6380
    (email_container,) = pod_spec(one(docs, "Deployment", "email-worker"))["containers"]
    env = {e["name"]: e.get("value") for e in email_container["env"]}
    assert env["JQW_HANDLERS"] == "myapp.email"
    assert env["JQW_CONCURRENCY"] == "8"
    assert env["JQW_REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@redis.jq-chart-b.svc:6380/2"
    assert email_container["args"] == ["worker", "--queues", "email:processing,email:sending"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("replicaCount=two", "replicaCount"),
        ("surprise=1", "surprise"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("podDisruptionBudget.enabled=maybe", "enabled"),
        ("metrics.port=70000", "port"),
        ("watchNamespaces=null", "watchNamespaces"),
    ],
)
def test_a_wrong_value_fails_naming_the_field(helm: Helm, override: str, field: str) -> None:
    result = helm.run("template", "x", str(CHART), "--set", override)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


def test_a_wrong_value_in_a_values_file_fails_install_too(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers:\n  - name: web\n    queues: []\n")
    result = helm.run("install", "x", str(CHART), "--dry-run=client", "--values", str(bad))
    assert result.returncode != 0
    assert "queues" in result.stderr


def test_a_worker_outside_the_watched_namespaces_is_refused(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers:\n  - {name: web, queues: [web], namespace: elsewhere}\n")
    result = helm.run("template", "x", str(CHART), "--values", str(bad))
    assert result.returncode != 0
    assert 'workers[web].namespace "elsewhere" is not in watchNamespaces' in result.stderr


def test_a_worker_without_handlers_is_refused_naming_the_setting(
    helm: Helm, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers:\n  - {name: web, queues: [web]}\n")
    result = helm.run("template", "x", str(CHART), "--values", str(bad))
    assert result.returncode != 0
    assert "workers[web].handlers: name the Python module with the job handlers" in result.stderr
