"""The worker's garbage collector: young objects given time to die, the start-up heap kept out of full collections.

A worker makes and drops many small objects a second per bed (records, events, tasks, Redis replies), and
keeps a heap of about 200,000 objects made at start-up (modules, functions, types) that never die. With
CPython's default thresholds (700, 10, 10) a young object still in flight when a collection comes (an event
waiting for its batch, a task waiting on Redis) is promoted and later dies in the oldest generation, so at
1,500 beds the oldest generation was collected every 10-20 s, each time walking the whole heap for about
0.2 s with the GIL held and freeing almost nothing (0-200 objects): 2% of the event loop's time in pauses
that each delayed every packet waiting behind them (docs/SCALING.md, "Now").

Two changes, both from the standard library's own ``gc`` interface:

- ``gc.freeze()`` once the worker is built moves the start-up heap to the permanent generation, which full
  collections do not walk (CPython's documented use of it is before ``fork``; it serves long-running
  processes the same way). Objects made later are collected as before.
- A larger young-generation threshold: a collection of the youngest generation every ``young_threshold``
  net allocations instead of 700, so an object must live through a much longer time to be promoted.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass


@dataclass(frozen=True)
class GcTuning:
    """What was applied: the thresholds now in force and how many objects were frozen."""

    thresholds: tuple[int, int, int]
    frozen: int


def tune_gc(young_threshold: int) -> GcTuning | None:
    """Freeze the heap built so far and collect the young generation every ``young_threshold`` allocations.

    ``young_threshold`` 0 leaves the collector as CPython set it (nothing frozen); returns None then.
    Call once, when the worker's app and its imports are in place, before the first record.
    """
    if young_threshold <= 0:
        return None
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    return GcTuning(thresholds=gc.get_threshold(), frozen=gc.get_freeze_count())
