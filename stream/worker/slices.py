"""Per-patient work over many patients, in slices that give the event loop back.

A tick prepares model inputs for every patient due at once: beds that started
together fall due together, and 200 windows built back to back held every
packet behind them (docs/SCALING.md). Each patient's piece stays synchronous, so
it reads one consistent window; between slices the packets that arrived go first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def map_in_slices(fn: Callable[[T], R], items: Iterable[T], slice_s: float) -> list[R]:
    """``[fn(item) for item in items]``, yielding to the event loop whenever ``slice_s`` of work has run."""
    out: list[R] = []
    started = time.perf_counter()
    for item in items:
        out.append(fn(item))
        if time.perf_counter() - started >= slice_s:
            await asyncio.sleep(0)
            started = time.perf_counter()
    return out
