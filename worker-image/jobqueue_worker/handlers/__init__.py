"""Job types shipped with the worker runtime: ``webhook`` and ``email``.

Use them from your own handler module::

    from jobqueue_worker.handlers import register
    from jobqueue_worker.registry import Registry

    registry = Registry()
    register(registry)                  # both, settings from the environment
    register(registry, only=["email"])  # or just one

or point the worker at this package (``JQW_HANDLERS=jobqueue_worker.handlers``):
its ``registry`` attribute is built on first access, reading and validating the
settings then, so a missing ``WEBHOOK_SIGNING_SECRET`` or ``SMTP_HOST`` stops the
worker at start with a ``ConfigError`` naming the variable, not at the first job.
The settings and payloads are documented in ``docs/handlers.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobqueue_worker.handlers import email, webhook
from jobqueue_worker.handlers._config import load
from jobqueue_worker.handlers.email import EmailSettings
from jobqueue_worker.handlers.webhook import WebhookSettings
from jobqueue_worker.registry import JobType, Registry

__all__ = [
    "NAMES",
    "EmailSettings",
    "WebhookSettings",
    "register",
    "register_email",
    "register_webhook",
]

NAMES: tuple[str, ...] = ("webhook", "email")


def register_webhook(
    registry: Registry, settings: WebhookSettings | None = None, *, name: str = "webhook"
) -> JobType:
    """Register the webhook job type; ``settings`` default to the ``WEBHOOK_*`` environment."""
    settings = settings or load(WebhookSettings)
    return registry.register(name, webhook.make_handler(settings), backoff=webhook.WEBHOOK_BACKOFF)


def register_email(
    registry: Registry, settings: EmailSettings | None = None, *, name: str = "email"
) -> JobType:
    """Register the email job type; ``settings`` default to the ``SMTP_*``, ``EMAIL_*`` env."""
    settings = settings or load(EmailSettings)
    return registry.register(name, email.make_handler(settings), backoff=email.EMAIL_BACKOFF)


def register(registry: Registry, *, only: Iterable[str] = NAMES) -> list[JobType]:
    """Register the shipped job types named in ``only`` (default: all), validating their settings.

    Each job type reads only its own settings, so a worker that sends no email
    needs no SMTP configuration.
    """
    wanted = list(only)
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown shipped job types {unknown}; known: {list(NAMES)}")
    registered = []
    if "webhook" in wanted:
        registered.append(register_webhook(registry))
    if "email" in wanted:
        registered.append(register_email(registry))
    return registered


_built: dict[str, Registry] = {}


def __getattr__(name: str) -> Registry:
    """``jobqueue_worker.handlers.registry``: both job types, built once, on first access.

    Lazy so that importing the package (for ``register`` or the settings classes)
    never requires the environment to be configured.
    """
    if name != "registry":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        built = Registry()
        register(built)
        _built[name] = built
    return _built[name]
