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
