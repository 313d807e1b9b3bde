"""The worker consumer's eager hand-over (stream/worker/kafka_transport.py): the same results, errors and
cancellation as Faust's ``wait_first``, without its tasks when the hand-over does not suspend."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from stream.core.settings import Settings
from stream.worker.app import Worker
from stream.worker.kafka_transport import EAGER_HAND_OVER, Resumed

pytestmark = pytest.mark.skipif(not EAGER_HAND_OVER, reason="Faust's own wait from Python 3.12 on")


def consumer(tmp_path: Path) -> Any:
    return Worker(Settings(state_dir=tmp_path, models_enabled=False)).app.consumer


async def test_a_hand_over_that_does_not_suspend_starts_no_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drain loop's common case: the event is queued, the result is the hand-over's, and the rebalance
    wait is closed without having run (an unawaited coroutine would warn)."""
    c = consumer(tmp_path)
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
    started: list[object] = []
    loop = asyncio.get_running_loop()
    real_create_task = loop.create_task
    monkeypatch.setattr(loop, "create_task", lambda *a, **k: started.append(a) or real_create_task(*a, **k))

    async def hand_over() -> str:
        await queue.put(1)
        return "queued"

    flow = asyncio.Event()
    hand, rebalance = hand_over(), flow.wait()
    done, results, stopped = await c.wait_first(hand, rebalance)
    assert (done, results, stopped) == ([hand], ["queued"], False)
    assert queue.qsize() == 1 and started == []
    assert inspect.getcoroutinestate(rebalance) == inspect.CORO_CLOSED


async def test_a_hand_over_blocked_on_a_full_buffer_goes_on_when_there_is_room(tmp_path: Path) -> None:
    c = consumer(tmp_path)
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)

    async def hand_over() -> str:
        await queue.put(1)
        return "queued late"

    async def make_room() -> None:
        await asyncio.sleep(0.01)
        queue.get_nowait()

    room = asyncio.create_task(make_room())
    hand = hand_over()
    done, results, stopped = await c.wait_first(hand, asyncio.Event().wait())
    await room
    assert (done, results, stopped) == ([hand], ["queued late"], False)
    assert list(queue._queue) == [1]  # type: ignore[attr-defined]


async def test_a_blocked_hand_over_is_abandoned_when_a_rebalance_suspends_the_flow(tmp_path: Path) -> None:
    """What Faust's wait is there for: the rebalance wins and the blocked hand-over is cancelled inside."""
    c = consumer(tmp_path)
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)
    cancelled = asyncio.Event()
    flow = asyncio.Event()

    async def hand_over() -> None:
        try:
            await queue.put(1)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def rebalance() -> None:
        await asyncio.sleep(0.01)
        flow.set()

    asyncio.create_task(rebalance())
    suspended = flow.wait()
    done, results, stopped = await c.wait_first(hand_over(), suspended)
    await asyncio.sleep(0)  # the cancelled hand-over runs its handler
    assert (done, results, stopped) == ([suspended], [True], False)
    assert cancelled.is_set() and list(queue._queue) == [0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("suspends_first", [False, True])
async def test_a_hand_over_that_fails_raises_its_error(tmp_path: Path, suspends_first: bool) -> None:
    c = consumer(tmp_path)

    async def hand_over() -> None:
        if suspends_first:
            await asyncio.sleep(0)
        raise ValueError("cannot decode")

    rebalance = asyncio.Event().wait()
    with pytest.raises(ValueError, match="cannot decode"):
        await c.wait_first(hand_over(), rebalance)


async def test_other_waits_are_fausts(tmp_path: Path) -> None:
    """One waitable (the consumer's ``wait``), or a timeout: no eager step."""
    c = consumer(tmp_path)
    ready = asyncio.Event()
    ready.set()
    done, _results, stopped = await c.wait_first(ready)
    assert done == [ready] and not stopped


async def test_a_resumed_coroutine_passes_values_and_exceptions_through() -> None:
    """Driven by a task from its first suspension on, as ``await coro`` would have been."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def twice() -> int:
        first = await fut
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return first * 10
        return -1

    coro = twice()
    task = asyncio.ensure_future(Resumed(coro, coro.send(None)))
    fut.set_result(4)
    await asyncio.sleep(0.01)
    task.cancel()  # the coroutine catches it and returns
    assert await task == 40
