"""The worker's two clocks of its own: fetches paced per broker (stream/worker/kafka_transport.py) and the
analysis tick start to start (stream/worker/app.py)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream.worker.app import tick_every
from stream.worker.kafka_transport import pace_fetches


class FakeFetcher:
    """aiokafka's Fetcher as pace_fetches sees it: the fetch it sends to one node."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []

    async def _proc_fetch_request(self, _assignment: Any, node_id: int, _request: Any) -> bool:
        self.sent.append((node_id, asyncio.get_running_loop().time()))
        return True


async def test_fetches_to_one_broker_start_at_least_the_cycle_apart() -> None:
    """A consumer that drains at once would fetch again at once; paced, the second and third fetch to a
    node wait out the cycle from the start of the one before, while another node is not held back."""
    fetcher = FakeFetcher()
    pace_fetches(fetcher, 0.2)
    for node in (0, 0, 1, 0):
        assert await fetcher._proc_fetch_request(None, node, None) is True
    node0 = [t for node, t in fetcher.sent if node == 0]
    assert len(node0) == 3 and all(b - a >= 0.199 for a, b in zip(node0, node0[1:]))
    node1 = next(t for node, t in fetcher.sent if node == 1)
    assert node1 - node0[1] < 0.1  # node 1's first fetch went at once, not after node 0's cycle


async def test_a_fetch_not_due_yet_gives_up_quietly_when_cancelled() -> None:
    """aiokafka cancels its pending fetches when the assignment changes or the consumer closes; one still
    waiting for its turn is not sent and answers False, as aiokafka's own fetch does when cancelled."""
    fetcher = FakeFetcher()
    pace_fetches(fetcher, 10.0)
    await fetcher._proc_fetch_request(None, 0, None)
    waiting = asyncio.ensure_future(fetcher._proc_fetch_request(None, 0, None))
    await asyncio.sleep(0.01)
    waiting.cancel()
    assert await waiting is False
    assert len(fetcher.sent) == 1


def test_the_pacing_still_reaches_the_aiokafka_and_faust_internals_it_relies_on() -> None:
    """The fetch routine looks up _proc_fetch_request on the fetcher each time it sends (so the instance's
    paced one is used), and Faust's consumer thread keeps its aiokafka consumer in _consumer after on_start;
    an upgrade that changes either fails here (the versions are pinned in pyproject.toml)."""
    assert "self._proc_fetch_request(" in inspect.getsource(Fetcher._fetch_requests_routine)
    assert "self._consumer = " in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread.on_start)


async def test_ticks_come_start_to_start_and_an_overrun_is_followed_at_once() -> None:
    """Ticks of 0.1 s every 0.2 s start 0.2 s apart (Faust's timer: 0.3); one of 0.45 s is followed by the
    next as soon as it ends, and the starts it overran are not made up."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    lengths = iter([0.1, 0.1, 0.45, 0.1, 0.1, 0.1])

    async def tick() -> None:
        starts.append(loop.time())
        await asyncio.sleep(next(lengths, 0.1))
        if len(starts) == 6:
            raise asyncio.CancelledError

    try:
        await tick_every(0.2, tick)
    except asyncio.CancelledError:
        pass
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0.195 <= gaps[i] <= 0.27 for i in (0, 1))
    assert 0.45 <= gaps[2] <= 0.52  # the long tick: the next starts as it ends
    assert all(0.195 <= gaps[i] <= 0.27 for i in (3, 4))  # then every 0.2 s again, no burst to catch up
