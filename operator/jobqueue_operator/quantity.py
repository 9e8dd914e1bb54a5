"""Kubernetes resource quantities ("500m", "512Mi") as plain numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18,
}  # fmt: skip


def parse_quantity(value: object) -> float | None:
    """A Kubernetes resource quantity ("500m", "1.5", "512Mi", "1e9") as a number.

    ``None`` for anything unreadable: a resource trigger without a readable
    request is off, not a crash.
    """
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix) and not (suffix == "E" and "e" in text.lower()[:-1]):
            try:
                return float(text[: -len(suffix)]) * _SUFFIX[suffix]
            except ValueError:
                return None
    try:
        return float(text)
    except ValueError:
        return None


def template_requests(obj: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """CPU (cores) and memory (bytes) of the first container of ``spec.template``.

    The request, or the limit where no request is set; ``None`` where neither is,
    or where the object has no Pod template there.
    """
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or [{}]
    resources = containers[0].get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    cpu = parse_quantity(requests.get("cpu", limits.get("cpu")))
    memory = parse_quantity(requests.get("memory", limits.get("memory")))
    return cpu, memory
