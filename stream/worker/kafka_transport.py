"""Faust's aiokafka transport with the consumer's fetch wait as a setting.

faust-streaming 0.15 builds the worker's consumer with ``fetch_max_wait_ms=1500`` and no way to
change it. Apache Kafka answers a fetch as soon as one byte is there (``fetch_min_bytes=1``), so
there the wait only bounds an idle poll. The embedded Tansu broker does not wake a waiting fetch
when a record is produced: it answers when the wait is over. Measured on this machine (one
producer, a record every 137 ms): 1500 ms gave a delivery median of 0.39 s and a maximum of
0.75 s; 100 ms gave 0.028 / 0.057 s; 10 ms gave 0.009 / 0.014 s. With 1500 ms, a packet spent
about half of its 1-s age budget waiting in the broker before the worker saw it (docs/SCALING.md).
"""

from __future__ import annotations

from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor's value here until start() hands it to its fetcher;
        # tests/integration/test_worker_fetch_wait.py fails if that stops being so.
        consumer._fetch_max_wait_ms = cast(FetchWaitTransport, transport).fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumer asks the broker to wait at most ``fetch_max_wait_ms``."""

    Consumer = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def use_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give ``app`` a consumer transport with this fetch wait (before the app starts)."""
    app.transport = FetchWaitTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)
