"""The worker's garbage-collector tuning: what it sets, and that 0 leaves CPython's collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stream.core.settings import Settings
from stream.worker.gc_tuning import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the collector back as it was: the test process must not keep a frozen heap."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_the_heap_and_raises_the_young_threshold(restored_gc: None) -> None:
    _young, middle, old = gc.get_threshold()
    kept = [[i] for i in range(1000)]  # tracked objects alive at the call: frozen with the rest

    tuned = tune_gc(20000)

    assert tuned is not None
    assert gc.get_threshold() == (20000, middle, old) == tuned.thresholds
    assert tuned.frozen == gc.get_freeze_count() >= len(kept)
    assert not any(o is kept for o in gc.get_objects(generation=2))  # out of the full collections' walk


def test_objects_made_after_the_freeze_are_still_collected(restored_gc: None) -> None:
    tune_gc(20000)
    frozen = gc.get_freeze_count()

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    for _ in range(100):
        Node()
    assert gc.collect() >= 100
    assert gc.get_freeze_count() == frozen


def test_zero_leaves_cpythons_collector_as_it_is(restored_gc: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()

    assert tune_gc(0) is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_setting_defaults_to_the_tuned_collector() -> None:
    assert Settings().worker_gc_young_threshold == 20000
    assert Settings(worker_gc_young_threshold=0).worker_gc_young_threshold == 0
    with pytest.raises(ValueError):
        Settings(worker_gc_young_threshold=-1)
