"""The worker's Kafka consumer against the real embedded broker: a record reaches it within its fetch wait.

Tansu answers a waiting fetch only when the wait is over, even if a record arrives meanwhile, so the
wait Faust hard-codes (1500 ms) put a delivery median near 0.4 s on every packet (docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.worker.app import Worker

pytestmark = pytest.mark.integration


async def _noop(_record: object) -> None:
    return None


async def test_the_worker_consumer_receives_records_within_its_fetch_wait(stack, tmp_path) -> None:
    settings = stack.model_copy(update={"state_dir": tmp_path, "worker_app_id": f"fetch-{uuid.uuid4().hex[:8]}",
                                        "worker_fetch_max_wait_ms": 100})
    topic = f"fetch-wait-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    app = Worker(settings, on_record=_noop).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # the consumer the worker runs
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_end(TopicPartition(topic, 0))
        delays: list[float] = []

        async def receive() -> None:
            while len(delays) < 20:
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    delays.extend(time.time() - float(r.value.decode()) for r in records)

        receiving = asyncio.create_task(receive())
        await asyncio.sleep(0.5)  # the consumer is waiting in a fetch when the first record comes
        for _ in range(20):
            await producer.send_and_wait(topic, str(time.time()).encode())
            await asyncio.sleep(0.137)  # off the fetch wait's rhythm
        await asyncio.wait_for(receiving, 20)
    finally:
        await producer.stop()
        await consumer.stop()
    assert statistics.median(delays) < 0.15, sorted(delays)
    assert max(delays) < 0.5, sorted(delays)
