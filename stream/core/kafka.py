"""Kafka clients configured from the settings, with operator-readable failures."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from stream.core.errors import SetupError
from stream.core.outbox import Outbox
from stream.core.settings import Settings


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


def producer_outbox(settings: Settings, name: str, *, max_records: int, max_bytes: int = 64 * 1024 * 1024,
                    **producer_overrides: object) -> Outbox:
    """An :class:`~stream.core.outbox.Outbox` that connects with :func:`start_producer` (call ``start()``)."""

    async def connect() -> AIOKafkaProducer:
        # the client expires what it cannot deliver in the outbox's send timeout (see Outbox._send)
        options = {"request_timeout_ms": int(settings.gateway_publish_timeout_s * 1000), **producer_overrides}
        return await start_producer(settings, **options)

    async def probe() -> tuple[str, frozenset[str]]:
        return await broker_identity(settings)

    return Outbox(connect, name=name, max_records=max_records, max_bytes=max_bytes,
                  send_timeout_s=settings.gateway_publish_timeout_s,
                  retry_first_s=settings.outage_retry_first_s, retry_max_s=settings.outage_retry_max_s,
                  probe=probe, probe_s=settings.broker_watch_s)


async def broker_identity(settings: Settings) -> tuple[str, frozenset[str]]:
    """The broker cluster's id (the launcher gives each embedded broker run its own) and its topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=int(settings.kafka_admin_timeout_s * 1000))
    await admin.start()
    try:
        cluster = str((await admin.describe_cluster())["cluster_id"])
        return cluster, frozenset(await admin.list_topics())
    finally:
        await admin.close()


async def partition_lag(settings: Settings) -> dict[tuple[str, int], tuple[int, bool]]:
    """Per (signal topic, partition): (records the worker group has not committed yet, committed ever).

    Reads the group's committed offsets without joining the group (no rebalance is caused);
    a partition the group never committed counts from offset 0.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    names = settings.topic_names()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.worker_app_id,
                                enable_auto_commit=False,
                                request_timeout_ms=int(settings.kafka_admin_timeout_s * 1000))
    await consumer.start()
    try:
        await consumer.topics()
        lag: dict[tuple[str, int], tuple[int, bool]] = {}
        for topic in (names.ctg, names.vitals):
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            ends = await consumer.end_offsets(tps) if tps else {}
            for tp in tps:
                committed = await consumer.committed(tp)
                lag[(topic, tp.partition)] = (max(0, ends[tp] - (committed or 0)), committed is not None)
        return lag
    finally:
        await consumer.stop()


async def group_lag(settings: Settings) -> dict[str, int] | None:
    """Per signal topic, records behind (None: the group has committed nothing yet)."""
    per_partition = await partition_lag(settings)
    if not any(known for _, known in per_partition.values()):
        return None
    totals: dict[str, int] = {}
    for (topic, _p), (lag, _known) in per_partition.items():
        totals[topic] = totals.get(topic, 0) + lag
    return totals
