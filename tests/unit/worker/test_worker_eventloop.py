"""The worker's event loop choice (JQW_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from jobqueue_worker import eventloop
from jobqueue_worker.settings import load

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_means_the_default_loop() -> None:
    assert eventloop.loop_factory("asyncio") is None


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop not installed")
def test_auto_and_uvloop_pick_uvloop_when_installed() -> None:
    for choice in ("auto", "uvloop"):
        factory = eventloop.loop_factory(choice)  # type: ignore[arg-type]
        assert factory is not None
        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.run(_name()) == "uvloop"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(eventloop.EventLoopUnavailableError, match="JQW_EVENT_LOOP"):
        eventloop.loop_factory("uvloop")


def test_the_setting_defaults_to_auto_and_rejects_other_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load().event_loop == "auto"
    monkeypatch.setenv("JQW_EVENT_LOOP", "trio")
    with pytest.raises(Exception, match="JQW_EVENT_LOOP"):
        load()


async def _name() -> str:
    return eventloop.loop_name(asyncio.get_running_loop())
