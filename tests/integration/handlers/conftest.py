"""Fixtures for the shipped handlers' tests; the servers themselves are in handler_servers.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest runs with --import-mode=importlib, which puts no test folder on sys.path;
# the tests here share handler_servers.py, so this folder goes on it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from handler_servers import Receiver, SmtpSink, start_receiver, start_sink


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that verifies signatures and answers as scripted."""
    async with start_receiver() as state:
        yield state


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server on a free loopback port (no TLS, no AUTH) that captures messages."""
    sink = start_sink()
    try:
        yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def smtp_factory() -> Iterator[Callable[..., SmtpSink]]:
    """Start SMTP servers with extra aiosmtpd options (STARTTLS, AUTH); all stopped after."""
    started: list[SmtpSink] = []

    def start(**smtp_kwargs: Any) -> SmtpSink:
        sink = start_sink(**smtp_kwargs)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.controller.stop()
