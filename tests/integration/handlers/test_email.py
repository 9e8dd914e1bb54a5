"""The email job type against a real SMTP server (aiosmtpd on 127.0.0.1), no mocks."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from handler_servers import SmtpSink, free_port, password_authenticator, self_signed
from pydantic import JsonValue

from jobqueue_worker.eager import EagerProducer
from jobqueue_worker.envelope import JobStatus
from jobqueue_worker.errors import ConfigError, PermanentError, Retry
from jobqueue_worker.handlers import register
from jobqueue_worker.handlers.email import EmailSettings, parse_address, send
from jobqueue_worker.registry import Job, Registry


def settings(sink: SmtpSink | None = None, **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "smtp_host": sink.host if sink else "127.0.0.1",
        "smtp_port": sink.port if sink else free_port(),
        "smtp_starttls": False,
        "smtp_timeout_s": 5.0,
        "email_from": "Shop <no-reply@shop.example>",
    }
    values.update(overrides)
    return EmailSettings(**values)


def job(payload: JsonValue, *, id: str = "e1") -> Job:
    return Job(
        id=id,
        type="email",
        queue="email:processing",
        payload=payload,
        priority=5,
        attempt=1,
        max_attempts=6,
        deliveries=1,
    )


def order_shipped(**extra: JsonValue) -> dict[str, JsonValue]:
    payload: dict[str, JsonValue] = {
        "to": "Ana Lima <ana@customer.example>",
        "subject": "Order $order_id has shipped, $name",
        "body": "Hello $name,\n\norder ${order_id} is on its way. $unknown stays. {0.__class__}",
        "vars": {"name": "Ana", "order_id": 42, "gift": True},
    }
    payload.update(extra)
    return payload


def only_message(sink: SmtpSink) -> EmailMessage:
    (captured,) = sink.handler.messages
    message = captured.message
    assert isinstance(message, EmailMessage)
    return message


# ---------------------------------------------------------------- delivery
def test_sends_personalised_message_with_headers(smtp_sink: SmtpSink) -> None:
    result = send(job(order_shipped(reply_to="help@shop.example"), id="job42"), settings(smtp_sink))

    assert result == {"message_id": "<job42@shop.example>", "accepted": 1, "refused": []}
    (captured,) = smtp_sink.handler.messages
    assert captured.mail_from == "no-reply@shop.example"
    assert captured.rcpt_tos == ["ana@customer.example"]
    message = only_message(smtp_sink)
    assert message["Subject"] == "Order 42 has shipped, Ana"
    assert message["From"] == "Shop <no-reply@shop.example>"
    assert message["To"] == "Ana Lima <ana@customer.example>"
    assert message["Reply-To"] == "help@shop.example"
    assert message["Message-ID"] == "<job42@shop.example>"
    assert message["Date"]
    body = message.get_content()
    assert "Hello Ana," in body
    assert "order 42 is on its way" in body
    # Unknown placeholders stay as written; format-style fields are never evaluated.
    assert "$unknown stays. {0.__class__}" in body


def test_html_part_escapes_values(smtp_sink: SmtpSink) -> None:
    payload = order_shipped(html="<p>Hi $name</p>", vars={"name": "<script>x</script>"})
    send(job(payload), settings(smtp_sink))

    message = only_message(smtp_sink)
    assert message.get_content_type() == "multipart/alternative"
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None
    assert text_part is not None
    assert "<p>Hi &lt;script&gt;x&lt;/script&gt;</p>" in html_part.get_content()
    assert "Hello <script>x</script>," in text_part.get_content()  # plain text is not HTML


def test_several_recipients(smtp_sink: SmtpSink) -> None:
    to: list[JsonValue] = ["a@one.example", "B <b@two.example>"]
    result = send(job(order_shipped(to=to)), settings(smtp_sink))
    assert result["accepted"] == 2
    (captured,) = smtp_sink.handler.messages
    assert captured.rcpt_tos == ["a@one.example", "b@two.example"]


def test_partial_refusal_completes_and_reports(smtp_sink: SmtpSink) -> None:
    # Retrying would send the accepted copy again, so the job completes.
    smtp_sink.handler.rcpt_replies["gone@two.example"] = "550 5.1.1 no such user"
    to: list[JsonValue] = ["a@one.example", "gone@two.example"]
    result = send(job(order_shipped(to=to)), settings(smtp_sink))
    assert result["accepted"] == 1
    assert result["refused"] == ["gone@two.example"]
    (captured,) = smtp_sink.handler.messages
    assert captured.rcpt_tos == ["a@one.example"]


# ---------------------------------------------------------------- SMTP replies
@pytest.mark.parametrize(
    ("where", "reply", "error"),
    [
        ("rcpt", "450 4.2.1 mailbox busy", Retry),
        ("rcpt", "550 5.1.1 no such user", PermanentError),
        ("data", "451 4.3.0 try again later", Retry),
        ("data", "554 5.7.1 rejected as spam", PermanentError),
    ],
)
def test_reply_codes_decide_retry_or_permanent(
    smtp_sink: SmtpSink, where: str, reply: str, error: type[Exception]
) -> None:
    if where == "rcpt":
        smtp_sink.handler.rcpt_replies["ana@customer.example"] = reply
    else:
        smtp_sink.handler.data_reply = reply
    with pytest.raises(error, match=reply.split(maxsplit=1)[0]):
        send(job(order_shipped()), settings(smtp_sink))
    assert smtp_sink.handler.messages == []


def test_connection_refused_is_retry() -> None:
    with pytest.raises(Retry, match="ConnectionRefusedError"):
        send(job(order_shipped()), settings(None))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("not an object", "object"),
        (order_shipped(to="not-an-address"), "to"),
        (order_shipped(to=["a@one.example", "bad"]), r"to\[1\]"),
        (order_shipped(to="a@one.example, b@two.example"), "exactly one"),
        (order_shipped(to="a@one.example\r\nBcc: x@evil.example"), "control"),
        (order_shipped(to="root@localhost"), "domain"),
        (order_shipped(to=[]), "recipients"),
        (order_shipped(subject=None), "strings"),
        (order_shipped(vars={"name": {"nested": 1}}), r"vars\.name"),
        # A value with a line break would start a new header: refused, not sent.
        (order_shipped(vars={"name": "x\r\nBcc: victim@evil.example"}), "one line"),
    ],
)
def test_bad_payloads_are_permanent_and_send_nothing(
    smtp_sink: SmtpSink, payload: JsonValue, match: str
) -> None:
    with pytest.raises(PermanentError, match=match):
        send(job(payload), settings(smtp_sink))
    assert smtp_sink.handler.messages == []


def test_parse_address_accepts_names_and_refuses_junk() -> None:
    assert str(parse_address("Ana <ana@x.example>", "to")) == "Ana <ana@x.example>"
    assert parse_address("ana@x.example", "to").domain == "x.example"
    for bad in ["", "a@", "@b.example", "a b@c.example", "a@b@c.example", 7, "ä@b.example"]:
        with pytest.raises(ValueError, match="to"):
            parse_address(bad, "to")


# ---------------------------------------------------------------- STARTTLS and AUTH
@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    return self_signed(tmp_path)


def test_starttls_and_auth(
    smtp_factory: Callable[..., SmtpSink], tls: tuple[Path, ssl.SSLContext]
) -> None:
    cert, context = tls
    sink = smtp_factory(
        tls_context=context,
        require_starttls=True,
        authenticator=password_authenticator("mailer", "s3cret"),
        auth_require_tls=True,
    )
    good = settings(
        sink,
        smtp_starttls=True,
        smtp_ca_file=cert,
        smtp_username="mailer",
        smtp_password="s3cret",
    )
    send(job(order_shipped()), good)
    assert only_message(sink)["Subject"] == "Order 42 has shipped, Ana"

    wrong = settings(
        sink, smtp_starttls=True, smtp_ca_file=cert, smtp_username="mailer", smtp_password="no"
    )
    with pytest.raises(PermanentError, match="535"):
        send(job(order_shipped()), wrong)

    # The system CAs do not trust the test certificate: refused, never sent in clear.
    untrusted = settings(sink, smtp_starttls=True)
    with pytest.raises(PermanentError, match="not trusted"):
        send(job(order_shipped()), untrusted)
    assert len(sink.handler.messages) == 1


def test_starttls_required_but_not_offered_is_permanent(smtp_sink: SmtpSink) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        send(job(order_shipped()), settings(smtp_sink, smtp_starttls=True))
    assert smtp_sink.handler.messages == []


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"EMAIL_FROM": "x@shop.example"}, "SMTP_HOST: Field required"),
        ({"SMTP_HOST": "mail"}, "EMAIL_FROM: Field required"),
        ({"SMTP_HOST": "mail", "EMAIL_FROM": "nobody"}, "EMAIL_FROM: "),
        ({"SMTP_HOST": "mail", "EMAIL_FROM": "a@b.example", "SMTP_PORT": "0"}, "SMTP_PORT"),
        ({"SMTP_HOST": "mail", "EMAIL_FROM": "a@b.example", "SMTP_PORT": "465"}, "SMTPS"),
        (
            {"SMTP_HOST": "mail", "EMAIL_FROM": "a@b.example", "SMTP_USERNAME": "u"},
            "set both or neither",
        ),
        (
            {
                "SMTP_HOST": "mail",
                "EMAIL_FROM": "a@b.example",
                "SMTP_USERNAME": "u",
                "SMTP_PASSWORD": "p",
                "SMTP_STARTTLS": "false",
            },
            "in clear",
        ),
    ],
)
def test_bad_settings_stop_registration(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    for name in ["SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("EMAIL_FROM", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        register(Registry(), only=["email"])


async def test_registered_from_env_runs_through_the_eager_runtime(
    smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_HOST", smtp_sink.host)
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink.port))
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    monkeypatch.setenv("EMAIL_FROM", "no-reply@shop.example")
    registry = Registry()
    (job_type,) = register(registry, only=["email"])
    assert job_type.name == "email"
    assert not job_type.is_async  # smtplib blocks: it must run in the thread pool
    assert job_type.backoff.max_attempts == 6  # the seeds' email preset

    producer = EagerProducer(registry, default_queue="email:processing", seed=1)
    job_id = await producer.enqueue("email", order_shipped())

    record = producer.records[job_id]
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.result["message_id"] == f"<{job_id}@shop.example>"
    assert only_message(smtp_sink)["Subject"] == "Order 42 has shipped, Ana"


def test_address_errors_do_not_echo_the_address(smtp_sink: SmtpSink) -> None:
    # Errors land in logs and in Redis; payload contents stay out of both.
    with pytest.raises(PermanentError) as info:
        send(job(order_shipped(to="ana.secret@@customer.example")), settings(smtp_sink))
    assert "ana.secret" not in str(info.value)
