"""Faust's aiokafka transport: the consumer's fetch wait as a setting, fetches paced per broker, and a drain
loop that does not start four tasks for every record.

Fetch wait.

faust-streaming 0.15 builds the worker's consumer with ``fetch_max_wait_ms=1500`` and no way to
change it. Apache Kafka answers a fetch as soon as one byte is there (``fetch_min_bytes=1``), so
there the wait only bounds an idle poll. The embedded Tansu broker answers at once when records are
already there, but does not wake a waiting fetch when a record is produced: a fetch that found none
is answered when the wait is over. Measured on this machine (one
producer, a record every 137 ms): 1500 ms gave a delivery median of 0.39 s and a maximum of
0.75 s; 100 ms gave 0.028 / 0.057 s; 10 ms gave 0.009 / 0.014 s. With 1500 ms, a packet spent
about half of its 1-s age budget waiting in the broker before the worker saw it (docs/SCALING.md).

Fetch pacing. aiokafka sends a broker its next fetch as soon as every record of the last one is consumed,
and a broker with records waiting answers at once (Tansu too: 25-60 ms under load), so a consumer that keeps
up fetches as fast as it drains: 15-18 fetches a second at 800-1,500 beds. The embedded Tansu reads every
partition of the request for each fetch, at a cost that grows with its in-memory log; paced to one fetch
per broker every ``fetch_min_cycle_ms`` (100), its CPU beside one worker fell from 0.34-0.36 to 0.21-0.27 of
a core (docs/BENCHMARKS.md, "Capacity A/B: the garbage collector, and paced fetches again").

Drain loop. Faust hands every fetched record to its streams with ``Consumer.wait_first(callback(message),
suspend_flow.wait())``: the hand-over runs as a task beside a task waiting for a rebalance (and two more for
stop and crash), so that a hand-over blocked on a full stream buffer is abandoned when a rebalance
suspends the flow. Almost every hand-over does not block at all: it puts the event into the stream's queue
and returns. :meth:`_Consumer.wait_first` runs the hand-over up to its first suspension first, in the
drain loop's own task; only one that suspends goes on to Faust's wait, as before, with the same
cancellation. The four tasks and the ``asyncio.wait`` cost about 28 us a record, about 6% of a worker's
CPU at 800 beds (docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Coroutine, Generator
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

#: The hand-over may go on in another task than the one that started it. On Python 3.11 nothing on its path
#: (asyncio.Lock, Event, Queue, the 3.11 ``wait_for``) depends on which task runs it; from 3.12 ``wait_for``
#: binds its timeout to the task that entered it, so there Faust's own wait is kept.
EAGER_HAND_OVER = sys.version_info < (3, 12)


class Resumed:
    """A coroutine already run up to its first suspension, awaitable from there.

    Awaiting it gives the event loop the future the coroutine suspended on, then drives the coroutine on
    (values, exceptions and cancellation pass through), as ``await coro`` would have from the start.
    """

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending  # what the coroutine's first step yielded (a future, to the event loop)

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation included: into the coroutine, as the task would
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value


def pace_fetches(fetcher: Any, min_cycle_s: float) -> None:
    """Start a fetch to a broker no sooner than ``min_cycle_s`` after the last one to it started.

    aiokafka sends a node its next fetch as soon as every record of the last one is consumed, and a broker
    with records waiting answers at once, so a consumer that keeps up fetches as fast as it drains.
    """
    send = fetcher._proc_fetch_request
    next_at: dict[int, float] = {}

    async def paced(assignment: Any, node_id: int, request: Any) -> bool:
        loop = asyncio.get_running_loop()
        wait = next_at.get(node_id, 0.0) - loop.time()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:  # closed or unassigned meanwhile: as aiokafka's own fetch does
                return False
        next_at[node_id] = loop.time() + min_cycle_s
        return cast(bool, await send(assignment, node_id, request))

    fetcher._proc_fetch_request = paced


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def on_start(self) -> None:
        await super().on_start()
        cycle_ms = cast(FetchWaitTransport, self.transport).fetch_min_cycle_ms
        if cycle_ms and self._consumer is not None:
            pace_fetches(self._consumer._fetcher, cycle_ms / 1000)

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor's value here until start() hands it to its fetcher;
        # tests/integration/test_worker_fetch_wait.py fails if that stops being so.
        consumer._fetch_max_wait_ms = cast(FetchWaitTransport, transport).fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        """The drain loop's ``wait_first(callback(message), suspend_flow.wait())``, eagerly.

        The hand-over runs to its first suspension here. Done by then (the stream's queue had room): its
        result, as Faust's wait would give it, with no task started. Suspended: it goes on under Faust's wait
        beside the rebalance signal, as before. Any other wait is Faust's.
        """
        if not (EAGER_HAND_OVER and len(coros) == 2 and timeout is None and inspect.iscoroutine(coros[0])
                and not self._stopped.is_set() and not self._crashed.is_set()):
            return await (super().wait_first(*coros) if timeout is None else super().wait_first(*coros, timeout=timeout))
        hand_over, rest = cast(Coroutine[Any, Any, Any], coros[0]), coros[1:]
        try:
            pending = hand_over.send(None)
        except StopIteration as done:
            _close(rest)
            return WaitResults([hand_over], [done.value], False)
        except BaseException:
            _close(rest)  # Faust's wait raises the hand-over's error too
            raise
        resumed = Resumed(hand_over, pending)
        results = await super().wait_first(resumed, *rest)
        return results._replace(done=[hand_over if w is resumed else w for w in results.done])


def _close(waits: tuple[WaitArgT, ...]) -> None:
    """Close the waits that were never started (a coroutine never awaited would warn)."""
    for wait in waits:
        if inspect.iscoroutine(wait):
            wait.close()


class FetchWaitTransport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumer asks the broker to wait at most ``fetch_max_wait_ms``,
    starts its fetches to a broker at least ``fetch_min_cycle_ms`` apart (0: unpaced), and hands records
    over eagerly (:meth:`_Consumer.wait_first`)."""

    Consumer = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int, fetch_min_cycle_ms: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_cycle_ms = fetch_min_cycle_ms


def use_fetch_wait(app: faust.App, fetch_max_wait_ms: int, fetch_min_cycle_ms: int = 0) -> None:
    """Give ``app`` a consumer transport with this fetch wait and pacing (before the app starts)."""
    app.transport = FetchWaitTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms,
                                       fetch_min_cycle_ms=fetch_min_cycle_ms)
