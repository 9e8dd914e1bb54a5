"""Which event loop the worker runs on: uvloop when it is installed, else asyncio's.

uvloop (the ``uvloop`` extra, installed in the worker image) makes the loop's own
work per job (scheduling task steps, socket reads and writes) cheaper: about a
tenth less worker CPU per no-op job (docs/performance.md). Nothing in the runtime
depends on which loop it gets, so a missing uvloop only costs that speed.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Literal

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]


class EventLoopUnavailableError(RuntimeError):
    """``JQW_EVENT_LOOP=uvloop`` on an installation without uvloop."""


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``; None means asyncio's default loop."""
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise EventLoopUnavailableError(
                "JQW_EVENT_LOOP=uvloop but uvloop is not installed"
                " (pip install 'jobqueue-worker[uvloop]')"
            )
        return None
    import uvloop

    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
