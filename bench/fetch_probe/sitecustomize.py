"""Log every fetch a ctgwatch worker sends to the broker (a measuring aid for bench/capacity.py, not product code).

Python imports ``sitecustomize`` at start-up from the path, so with this folder on ``PYTHONPATH`` and
``CTGWATCH_FETCH_PROBE`` naming a directory, every worker process (``stream.cli worker``) that the bench
starts appends one line per fetch to ``<dir>/<pid>.log``: the fetch's start (Unix seconds), how long the broker
took to answer (s) and whether it brought records (1/0). Other processes are left alone.
``python bench/fetch_rate.py <dir>`` summarises the lines.

    PYTHONPATH=bench/fetch_probe CTGWATCH_FETCH_PROBE=/tmp/fetches python bench/capacity.py --beds 800

It wraps aiokafka's ``Fetcher._proc_fetch_request``, which the fetch routine calls once per fetch request.
"""

from __future__ import annotations

import os
import sys
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


if os.environ.get("CTGWATCH_FETCH_PROBE") and "worker" in sys.argv[1:]:
    _install(os.environ["CTGWATCH_FETCH_PROBE"])
