"""Turn a pydantic-settings failure into the runtime's ``ConfigError`` with env names.

The worker promises that bad configuration stops the process at start with a
message naming the setting (``jobqueue_worker.settings.load`` does the same for
``JQW_*``). The handlers' settings use their own, unprefixed names
(``SMTP_HOST``, ``WEBHOOK_SIGNING_SECRET``), so the translation lives here.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from jobqueue_worker.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Read ``cls`` from the environment (``overrides`` win); raise ``ConfigError`` on error.

    Secrets never appear in the message: only the variable name and pydantic's
    description of what is wrong (``input`` is deliberately left out).
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix") or "")
        parts = []
        for err in exc.errors():
            name = ".".join(str(x) for x in err["loc"])
            env = f"{prefix}{name}".upper() if name else cls.__name__
            parts.append(f"{env}: {err['msg']}")
        raise ConfigError(f"invalid {cls.__name__}: " + "; ".join(parts)) from None
