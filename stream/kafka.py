"""Kafka clients configured from the settings, with operator-readable failures."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from infra.launcher.errors import SetupError
from stream.config import Settings


async def start_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    """A started producer; acks from the leader, small linger so packets batch across beds."""
    options = dict(
        bootstrap_servers=settings.bootstrap_servers,
        acks=1,
        linger_ms=5,
        request_timeout_ms=int(settings.gateway_publish_timeout_s * 1000) + 10_000,
        client_id="ctgwatch",
    )
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        await producer.stop()
        raise SetupError(
            f"cannot reach the Kafka broker at {settings.bootstrap_servers} ({exc})",
            "start the stack with 'ctgwatch up' or set CTGWATCH_KAFKA_BOOTSTRAP",
        ) from exc
    return producer


async def group_lag(settings: Settings) -> dict[str, int] | None:
    """Records the worker group has not processed yet, per signal topic (None: nothing committed).

    Reads the group's committed offsets without joining the group (no rebalance is caused).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    names = settings.topic_names()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.worker_app_id,
                                enable_auto_commit=False, request_timeout_ms=5000)
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        seen = False
        for topic in (names.ctg, names.vitals):
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            if not tps:
                await consumer.topics()
                tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            ends = await consumer.end_offsets(tps) if tps else {}
            lag[topic] = 0
            for tp in tps:
                committed = await consumer.committed(tp)
                seen = seen or committed is not None
                lag[topic] += max(0, ends[tp] - (committed or 0))
        return lag if seen else None
    finally:
        await consumer.stop()
