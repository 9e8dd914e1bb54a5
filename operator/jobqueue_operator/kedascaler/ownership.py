"""Who is behind an HPA: KEDA names the HPA of a ScaledObject ``keda-hpa-<name>`` (pure).

A JobQueue refuses a target that an HPA scales. When the HPA is KEDA's, the
refusal names the ScaledObject, which is what the user created and must
delete (deleting the HPA alone would make KEDA create it again).
"""

from __future__ import annotations

KEDA_HPA_PREFIX = "keda-hpa-"


def describe_hpa(name: str) -> str:
    """``HorizontalPodAutoscaler <name>``, or the KEDA ScaledObject that owns it."""
    scaled_object = name.removeprefix(KEDA_HPA_PREFIX)
    if scaled_object and scaled_object != name:
        return f"KEDA ScaledObject {scaled_object} (HorizontalPodAutoscaler {name})"
    return f"HorizontalPodAutoscaler {name}"
