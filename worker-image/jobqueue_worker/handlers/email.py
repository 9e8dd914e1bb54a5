"""The ``email`` job type: one personalised message over SMTP.

Payload (a JSON object)::

    {"to": "ana@shop.example" | ["Ana <ana@shop.example>", ...],
     "subject": "Your order $order_id has shipped",
     "body": "Hello $name,\\n\\nyour parcel is on its way.",
     "html": "<p>Hello $name</p>",                 # optional alternative part
     "vars": {"name": "Ana", "order_id": 42},      # strings, numbers, booleans
     "reply_to": "support@shop.example"}           # optional

Templates use ``string.Template.safe_substitute``: ``$name`` and ``${name}``
only, no attribute or index access, so a template from a payload cannot reach
into Python objects the way ``str.format`` can (``{0.__class__...}``); a
placeholder without a value stays as written instead of failing the job. Values
put into the ``html`` part are HTML-escaped.

The sender is ``EMAIL_FROM`` from the settings, never the payload, so a job
cannot send as someone else. The ``Message-ID`` is derived from the job id, so
the copies that at-least-once delivery may produce carry the same id and mail
systems can fold them.

Why stdlib ``smtplib`` in the worker's thread pool and not ``aiosmtplib``: the
runtime already runs plain functions in a thread pool sized by its concurrency,
so a blocking SMTP conversation stalls nothing; ``smtplib`` ships with Python
(no dependency to pin and patch) and its exceptions carry the SMTP reply code,
which is all the retry decision needs.

Outcomes: the server's reply code decides. 4xx (and a refused or dropped
connection, a timeout) raises ``Retry``; 5xx raises ``PermanentError``. If the
server accepts some recipients and refuses others, the job completes and the
refused ones are in the result: retrying would send the accepted copies again.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, getaddresses
from typing import Final

from pydantic import Field, FilePath, JsonValue, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobqueue_worker.backoff import EMAIL as EMAIL_BACKOFF
from jobqueue_worker.errors import PermanentError, Retry
from jobqueue_worker.registry import Job

__all__ = ["EMAIL_BACKOFF", "EmailSettings", "make_handler", "parse_address", "send"]

_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN: Final = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_MAX_ADDRESS: Final = 320
_MAX_SUBJECT: Final = 998  # RFC 5322 line limit
_MAX_BODY: Final = 1_000_000


def parse_address(value: object, what: str) -> Address:
    """One mailbox, ``a@b.example`` or ``Name <a@b.example>``; ``ValueError`` otherwise.

    Stricter than ``email.utils.parseaddr``, which silently drops what it does
    not understand (``"a@b.example\\r\\nBcc: x@y"`` parses as ``a@b.example``).
    Domains must be ASCII (punycode) with at least one dot; ``user@localhost``
    and address literals are refused as almost always a mistake in production.
    Messages name the field (``what``) but never echo the address: errors end up
    in logs and in Redis, and the runtime keeps payload contents out of both.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}: must be a non-empty string")
    if len(value) > _MAX_ADDRESS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what}: too long or contains control characters")
    parsed = getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1]:
        raise ValueError(f"{what}: must be exactly one address")
    name, spec = parsed[0]
    if spec not in value:
        raise ValueError(f"{what}: could not be parsed cleanly")
    try:
        address = Address(display_name=name, addr_spec=spec)
    except Exception as exc:  # the parser raises IndexError, HeaderParseError, defects...
        raise ValueError(f"{what}: invalid address: {exc}") from None
    if not address.username or not address.username.isascii():
        raise ValueError(f"{what}: the local part must be non-empty ASCII")
    if not _DOMAIN.match(address.domain):
        raise ValueError(f"{what}: the domain is not an ASCII host name with a dot")
    return address


class EmailSettings(BaseSettings):
    """``SMTP_*`` and ``EMAIL_*`` environment variables, validated when registered."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    smtp_host: str = Field(min_length=1, description="SMTP server host name")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=True, description="upgrade with STARTTLS before AUTH")
    smtp_ca_file: FilePath | None = Field(
        default=None, description="PEM bundle to trust instead of the system CAs"
    )
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=600)
    email_from: str = Field(description="the sender of every message, e.g. 'Shop <no-reply@...>'")
    email_max_recipients: int = Field(default=50, ge=1, le=1000)

    @field_validator("email_from")
    @classmethod
    def _sender(cls, v: str) -> str:
        parse_address(v, "address")
        return v

    @field_validator("smtp_port")
    @classmethod
    def _not_implicit_tls(cls, v: int) -> int:
        # On 465 the server waits for a TLS handshake: every job would time out.
        if v == 465:
            raise ValueError("465 is implicit TLS (SMTPS), not supported; use 587 with STARTTLS")
        return v

    @model_validator(mode="after")
    def _auth(self) -> EmailSettings:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD: set both or neither")
        if self.smtp_username is not None and not self.smtp_starttls:
            raise ValueError(
                "SMTP_USERNAME needs SMTP_STARTTLS=true: AUTH would send the password in clear"
            )
        return self

    @property
    def sender(self) -> Address:
        return parse_address(self.email_from, "EMAIL_FROM")

    def tls_context(self) -> ssl.SSLContext:
        """Verifying context (host name and chain); a custom CA file for private relays."""
        cafile = str(self.smtp_ca_file) if self.smtp_ca_file else None
        return ssl.create_default_context(cafile=cafile)


# ---------------------------------------------------------------- payload
@dataclass(frozen=True)
class EmailRequest:
    to: tuple[Address, ...]
    subject: str
    body: str
    html: str | None
    reply_to: Address | None


def _vars(raw: JsonValue) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PermanentError("'vars' must be an object")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[key] = str(value)
        else:
            raise PermanentError(f"vars.{key} must be a string, number or boolean")
    return out


def render(
    template: str, values: Mapping[str, str], *, escape: Callable[[str], str] | None = None
) -> str:
    """``$name``/``${name}`` substitution; unknown names stay as written; nothing is evaluated."""
    if escape is not None:
        values = {k: escape(v) for k, v in values.items()}
    return string.Template(template).safe_substitute(values)


def parse_payload(payload: JsonValue, settings: EmailSettings) -> EmailRequest:
    """Validate and personalise; bad input is permanent (retrying cannot fix it)."""
    if not isinstance(payload, dict):
        raise PermanentError("email payload must be an object with 'to', 'subject' and 'body'")
    raw_to = payload.get("to")
    to_list = raw_to if isinstance(raw_to, list) else [raw_to]
    if not to_list or len(to_list) > settings.email_max_recipients:
        raise PermanentError(f"'to' needs 1 to {settings.email_max_recipients} recipients")
    try:
        to = tuple(parse_address(v, f"to[{i}]") for i, v in enumerate(to_list))
        reply_to = (
            parse_address(payload["reply_to"], "reply_to") if payload.get("reply_to") else None
        )
    except ValueError as exc:
        raise PermanentError(str(exc)) from None
    subject_t, body_t, html_t = payload.get("subject"), payload.get("body"), payload.get("html")
    if not isinstance(subject_t, str) or not isinstance(body_t, str):
        raise PermanentError("'subject' and 'body' must be strings")
    if html_t is not None and not isinstance(html_t, str):
        raise PermanentError("'html' must be a string")
    values = _vars(payload.get("vars"))
    subject = render(subject_t, values)
    # A value with a line break would otherwise start a new header (header injection).
    if any(c in subject for c in "\r\n\0") or len(subject) > _MAX_SUBJECT:
        raise PermanentError("the subject must be one line of at most 998 characters")
    body = render(body_t, values)
    html_body = render(html_t, values, escape=html.escape) if html_t is not None else None
    if len(body) + len(html_body or "") > _MAX_BODY:
        raise PermanentError("the message is over 1 MB")
    return EmailRequest(to=to, subject=subject, body=body, html=html_body, reply_to=reply_to)


def build_message(request: EmailRequest, settings: EmailSettings, job: Job) -> EmailMessage:
    sender = settings.sender
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = request.to
    if request.reply_to is not None:
        message["Reply-To"] = request.reply_to
    message["Subject"] = request.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{job.id}@{sender.domain}>"
    message.set_content(request.body)
    if request.html is not None:
        message.add_alternative(request.html, subtype="html")
    return message


# ---------------------------------------------------------------- sending
def _by_code(code: int, what: str) -> Exception:
    """Map an SMTP reply to the runtime's vocabulary: 4xx transient, anything else permanent."""
    if 400 <= code < 500:
        return Retry(None, f"{what} (SMTP {code}, transient)")
    return PermanentError(f"{what} (SMTP {code})")


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _refusal(refused: Mapping[str, tuple[int, bytes]]) -> Exception:
    codes = [code for code, _ in refused.values()]
    detail = "; ".join(
        f"{rcpt}: {code} {msg.decode(errors='replace')}" for rcpt, (code, msg) in refused.items()
    )
    if any(400 <= c < 500 for c in codes):
        return Retry(None, f"every recipient refused, some transiently: {detail}")
    return PermanentError(f"every recipient refused: {detail}")


def send(job: Job, settings: EmailSettings) -> dict[str, JsonValue]:
    """One SMTP conversation for ``job``; blocking (the runtime runs it in its thread pool)."""
    request = parse_payload(job.payload, settings)
    message = build_message(request, settings, job)
    recipients = [a.addr_spec for a in request.to]
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    smtp: smtplib.SMTP | None = None
    try:
        # The host goes to the constructor, not to connect(): only then does
        # smtplib remember it for STARTTLS's certificate host-name check.
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s)
        smtp.ehlo()
        if settings.smtp_starttls:
            # No silent downgrade: a server without STARTTLS is a configuration error.
            smtp.starttls(context=settings.tls_context())
            smtp.ehlo()
        if settings.smtp_username is not None and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        refused = smtp.send_message(
            message, from_addr=settings.sender.addr_spec, to_addrs=recipients
        )
    except smtplib.SMTPRecipientsRefused as exc:
        raise _refusal(exc.recipients) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"{where}: {exc} (check SMTP_STARTTLS and the credentials)") from exc
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"{where}: {_text(exc.smtp_error)}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"{where}: TLS certificate not trusted: {exc.verify_message}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, disconnected
        raise Retry(None, f"{where}: {type(exc).__name__}: {exc}") from exc
    finally:
        if smtp is not None:
            _close(smtp)
    refused_list: list[JsonValue] = [*sorted(refused)]
    return {
        "message_id": str(message["Message-ID"]),
        "accepted": len(recipients) - len(refused),
        "refused": refused_list,
    }


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely but never let it fail a job whose message was already accepted."""
    try:
        if smtp.sock is not None:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def make_handler(settings: EmailSettings) -> Callable[[Job], dict[str, JsonValue]]:
    """A plain function, so the registry runs it in the worker's thread pool."""

    def email(job: Job) -> dict[str, JsonValue]:
        return send(job, settings)

    return email
