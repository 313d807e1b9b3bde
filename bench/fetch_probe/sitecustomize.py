"""Log a ctgwatch worker's fetches, garbage collections and event-loop lag (a measuring aid for
bench/capacity.py, not product code).

Python imports ``sitecustomize`` at start-up from the path, so with this folder on ``PYTHONPATH`` and
``CTGWATCH_FETCH_PROBE`` naming a directory, every worker process (``stream.cli worker``) that the bench
starts appends to three files there; other processes are left alone:

- ``<pid>.log``, one line per fetch: its start (Unix seconds), how long the broker took to answer (s) and
  whether it brought records (1/0);
- ``gc-<pid>.log``, one line per collection: its end (Unix seconds), the generation, wall and CPU seconds,
  objects collected;
- ``lag-<pid>.log``, every 50 ms: how long a callback handed to the event loop from another thread waited to
  run (s), i.e. how long the loop was busy or paused when it came.

``python bench/fetch_rate.py <dir>`` summarises them.

    PYTHONPATH=bench/fetch_probe CTGWATCH_FETCH_PROBE=/tmp/fetches python bench/capacity.py --beds 800

It wraps aiokafka's ``Fetcher._proc_fetch_request``, which the fetch routine calls once per fetch request.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any


def _install(directory: str) -> None:
    from aiokafka.consumer import fetcher

    send = fetcher.Fetcher._proc_fetch_request
    out = open(os.path.join(directory, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115 (the process's life)

    async def logged(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        started = time.time()
        has_records = await send(self, assignment, node_id, request)
        out.write(f"{started:.3f} {time.time() - started:.4f} {int(bool(has_records))}\n")
        return bool(has_records)

    fetcher.Fetcher._proc_fetch_request = logged


def _log_collections(directory: str) -> None:
    out = open(os.path.join(directory, f"gc-{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    started = [0.0, 0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter(), time.process_time()]
        else:
            out.write(f"{time.time():.3f} {info['generation']} {time.perf_counter() - started[0]:.5f} "
                      f"{time.process_time() - started[1]:.5f} {info['collected']}\n")

    gc.callbacks.append(on_collection)


def _log_loop_lag(directory: str, every_s: float = 0.05) -> None:
    """A thread hands the main thread's running event loop a callback every ``every_s`` and logs its wait."""
    import asyncio

    out = open(os.path.join(directory, f"lag-{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    current: list[Any] = [None]
    run_forever = asyncio.BaseEventLoop.run_forever

    def probe() -> None:
        while True:
            loop = current[0]
            if loop is None or loop.is_closed():
                time.sleep(every_s)
                continue
            sent, ran = time.perf_counter(), threading.Event()

            def mark(sent: float = sent, ran: threading.Event = ran) -> None:
                out.write(f"{time.time():.3f} {time.perf_counter() - sent:.4f}\n")
                ran.set()

            try:
                loop.call_soon_threadsafe(mark)
            except RuntimeError:  # closed meanwhile
                continue
            ran.wait(10)
            time.sleep(every_s)

    def running(self: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            if current[0] is None:
                threading.Thread(target=probe, daemon=True).start()
            current[0] = self
        return run_forever(self)

    asyncio.BaseEventLoop.run_forever = running  # type: ignore[method-assign]


if os.environ.get("CTGWATCH_FETCH_PROBE") and "worker" in sys.argv[1:]:
    _install(os.environ["CTGWATCH_FETCH_PROBE"])
    _log_collections(os.environ["CTGWATCH_FETCH_PROBE"])
    _log_loop_lag(os.environ["CTGWATCH_FETCH_PROBE"])
