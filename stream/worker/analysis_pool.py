"""FIGO analyses in helper processes, so the worker's event loop handles packets meanwhile.

Opt-in (``CTGWATCH_ANALYSIS_PROCESSES``, default 0: in the event loop). The
analysis is the same pure function on copies of the same arrays, so its result
is the same; the pipeline still holds the patient's lock while it runs, so that
patient's packets wait for it exactly as before, while every other patient's
packets go on. Worth it where the machine has a core the worker does not use
(docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from detectors.ctg import CtgAnalysis, analyse_ctg
from detectors.quality import ModelVerdict

log = logging.getLogger("ctgwatch.analysis_pool")


def _ready() -> None:
    """Each helper imports the detectors once at start, not on its first analysis."""
    import detectors.ctg  # noqa: F401


class AnalysisPool:
    """``processes`` helper processes (spawned: the worker has threads, which a fork would copy half-done)."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("an analysis pool needs at least one process")
        self.processes = processes
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ready)

    async def analyse(self, fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None, t0: float,
                      verdict: ModelVerdict | None) -> CtgAnalysis:
        """``analyse_ctg`` in a helper; if the helpers died, once in this process while they restart."""
        call = functools.partial(analyse_ctg, np.array(fhr), np.array(uc), mhr=None if mhr is None else np.array(mhr),
                                 t0=t0, model_verdict=verdict)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except BrokenProcessPool:
            log.warning("the analysis helpers stopped; restarting them (this analysis runs in the worker)")
            self._executor = self._start()
            return call()

    @property
    def running(self) -> int:
        """How many helper processes are up (they start with the first analysis)."""
        return len(getattr(self._executor, "_processes", None) or {})

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
