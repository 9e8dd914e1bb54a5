"""A JobQueue's refusal names the KEDA ScaledObject behind an HPA, not only the HPA."""

from __future__ import annotations

import pytest

from jobqueue_operator.admission import claimed_by
from jobqueue_operator.claims import Claim, conflict
from jobqueue_operator.kedascaler.ownership import describe_hpa
from jobqueue_operator.targets import TargetRef


@pytest.mark.parametrize(
    ("hpa", "described"),
    [
        ("keda-hpa-worker", "KEDA ScaledObject worker (HorizontalPodAutoscaler keda-hpa-worker)"),
        ("cpu", "HorizontalPodAutoscaler cpu"),
        ("keda-hpa-", "HorizontalPodAutoscaler keda-hpa-"),
        ("my-keda-hpa-x", "HorizontalPodAutoscaler my-keda-hpa-x"),
    ],
)
def test_describe_hpa(hpa: str, described: str) -> None:
    assert describe_hpa(hpa) == described


def test_the_run_time_check_names_the_scaled_object() -> None:
    me = Claim("2026-05-01T00:00:00Z", "q")
    keda = Claim(
        "", "keda-hpa-w", kind="HorizontalPodAutoscaler", target=("apps", "Deployment", "w")
    )
    assert conflict(me, "w", [keda]) == (
        "KEDA ScaledObject w (HorizontalPodAutoscaler keda-hpa-w) already scales w"
    )


def test_the_webhook_names_the_scaled_object() -> None:
    message = claimed_by("q", TargetRef("w"), [], ["keda-hpa-w"])
    assert message is not None
    assert "KEDA ScaledObject w" in message
