"""Kubernetes resource quantities ("500m", "512Mi") as plain numbers."""

from __future__ import annotations

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
