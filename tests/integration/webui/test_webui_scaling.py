"""The Scaling page in chromium against the real API server: a JobQueue's replicas,
conditions and last decisions with their reasons, and the chart with its thresholds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobqueue_worker.producer import SyncProducer

pytestmark = [pytest.mark.redis, pytest.mark.k8s, pytest.mark.browser, pytest.mark.slow]

JOBQUEUE = """
apiVersion: jobqueue.dev/v1alpha1
kind: JobQueue
metadata: {{name: emails, namespace: {ns}}}
spec:
  scaleTargetRef: {{name: email-worker}}
  redis: {{host: redis.example.svc, port: 6379}}
  queues: ["emails"]
  minReplicas: 0
  maxReplicas: 8
  scaleUp: {{queueDepth: 6}}
  scaleDown: {{queueDepth: 2}}
"""

STATUS = {
    "status": {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Scaling",
                "message": "observing 1 queue",
                "lastTransitionTime": "2026-12-04T03:10:00Z",
            }
        ],
        "decisions": [
            {
                "time": "2026-12-04T03:11:00Z",
                "action": "scale_up",
                "fromReplicas": 1,
                "toReplicas": 2,
                "reason": "depth 14 above 6 per replica",
                "message": "",
                "limitedBy": [],
            },
            {
                "time": "2026-12-04T03:12:00Z",
                "action": "scale_down",
                "fromReplicas": 3,
                "toReplicas": 2,
                "reason": "depth 1 below 2 for 300s",
                "message": "",
                "limitedBy": ["cooldown"],
            },
        ],
    }
}


@pytest.mark.usefixtures("kubeconfig")  # KUBECONFIG, which the web server inherits
def test_scaling_page_shows_the_autoscalers_reasoning(  # noqa: PLR0917 - fixtures
    browser: Any,
    namespace: str,
    control_plane: Any,
    start_web: Any,
    redis_url: str,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "jq.yaml"
    manifest.write_text(JOBQUEUE.format(ns=namespace))
    control_plane.kubectl("apply", "-f", str(manifest))
    control_plane.kubectl(
        "patch",
        "jobqueue",
        "emails",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(STATUS),
    )
    producer = SyncProducer(redis_url)
    try:
        for _ in range(5):
            producer.enqueue("ok", {}, queue="emails")
    finally:
        producer.close()

    server = start_web("--namespace", namespace)  # KUBECONFIG points at the test plane
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(server.url + "/login")
    page.get_by_label("Access token").fill(server.readonly_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/scaling")
    section = page.get_by_role("region", name=f"{namespace}/emails")
    text = section.inner_text()
    assert "2 → 3 (min 0, max 8)" in text
    assert "Deployment/email-worker" in text
    assert "depth 1 below 2 for 300s" in text
    assert "cooldown" in text
    # Newest decision first.
    assert text.index("scale_down") < text.index("scale_up")
    chart = section.locator(".chart")
    assert chart.get_attribute("data-up") == "6.0"
    assert chart.get_attribute("data-down") == "2.0"
    page.wait_for_timeout(1500)  # two samples, so the chart has a line to draw
    page.reload()
    page.locator(".chart[data-points]").wait_for(timeout=15_000)
    page.screenshot(path=str(server.docs / "webui-scaling.png"), full_page=True)
    context.close()
