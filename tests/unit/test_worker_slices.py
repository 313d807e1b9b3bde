"""Model inputs for many patients are prepared in slices, so packets are not held behind them."""

from __future__ import annotations

import asyncio
import time

from stream.worker.slices import map_in_slices


def test_map_in_slices_keeps_order_and_lets_other_work_run_between_slices() -> None:
    async def scenario() -> tuple[list[int], int]:
        turns = 0
        done = asyncio.Event()

        async def packets() -> None:  # stands in for the packet agent
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        def slow_square(x: int) -> int:
            time.sleep(0.004)  # a window built synchronously
            return x * x

        other = asyncio.create_task(packets())
        await asyncio.sleep(0)
        turns = 0
        out = await map_in_slices(slow_square, range(20), slice_s=0.01)
        done.set()
        await other
        return out, turns

    out, turns = asyncio.run(scenario())
    assert out == [x * x for x in range(20)]
    assert turns >= 5  # 80 ms of work in 10-ms slices: the other task ran between them, not only at the end
