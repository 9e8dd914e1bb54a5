"""The operator's collector settings: young collections far apart, start-up objects set aside."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jobqueue_operator.handlers import GC_YOUNG_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_the_young_threshold_is_raised_and_the_rest_kept() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_garbage_collector()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
    assert GC_YOUNG_THRESHOLD > 700
    assert gc.get_freeze_count() > 0, "the objects alive at start-up are frozen"


@pytest.mark.usefixtures("restored_gc")
def test_cyclic_garbage_is_still_collected() -> None:
    tune_garbage_collector()

    class Node:
        other: object = None

    collected_before = sum(s["collected"] for s in gc.get_stats())
    for _ in range(GC_YOUNG_THRESHOLD * 3):
        a, b = Node(), Node()
        a.other, b.other = b, a
    assert sum(s["collected"] for s in gc.get_stats()) > collected_before
