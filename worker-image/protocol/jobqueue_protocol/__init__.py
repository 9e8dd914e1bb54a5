"""The contract between the worker runtime and the operator: the Redis key layout
(``keys``) and the one-round-trip statistics read (``stats``).

Only ``stats`` imports ``redis``; importing the package itself pulls in nothing
but the key layout.
"""

from jobqueue_protocol.keys import (
    BACKGROUND,
    CRITICAL,
    HIGH,
    LOW,
    NORMAL,
    PREFIX,
    PRIORITIES,
    PRIORITY_MAX,
    PRIORITY_MIN,
)

__all__ = [
    "BACKGROUND",
    "CRITICAL",
    "HIGH",
    "LOW",
    "NORMAL",
    "PREFIX",
    "PRIORITIES",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
]
