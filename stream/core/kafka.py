"""Kafka clients configured from the settings, with operator-readable failures."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from stream.core.errors import SetupError
from stream.core.outbox import Outbox
from stream.core.settings import Settings

log = logging.getLogger("ctgwatch.kafka")


def client_security(settings: Settings) -> dict[str, Any]:
    """aiokafka options for TLS and SASL (``CTGWATCH_KAFKA_SECURITY_PROTOCOL`` and friends).

    Every Kafka client of ctgwatch (producers, consumers, admin, the Faust worker through
    :func:`faust_credentials`) takes these, so one setting secures all of them.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # the settings' validator guarantees it
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return options


def faust_credentials(settings: Settings) -> Any:
    """The same security for the Faust worker (None: plaintext)."""
    import faust

    options = client_security(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=options["sasl_plain_username"],
                                     password=options["sasl_plain_password"],
                                     mechanism=settings.kafka_sasl_mechanism,
                                     ssl_context=options.get("ssl_context"))
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


async def start_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    """A started producer; acks from the leader, small linger so packets batch across beds."""
    options = dict(
        bootstrap_servers=settings.bootstrap_servers,
        acks=1,
        linger_ms=5,
        request_timeout_ms=int(settings.gateway_publish_timeout_s * 1000) + 10_000,
        client_id="ctgwatch",
        **client_security(settings),
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

    offsets = GroupOffsets(settings)
    return Outbox(connect, name=name, max_records=max_records, max_bytes=max_bytes,
                  send_timeout_s=settings.gateway_publish_timeout_s,
                  retry_first_s=settings.outage_retry_first_s, retry_max_s=settings.outage_retry_max_s,
                  probe=probe, probe_s=settings.broker_watch_s, committed=offsets.read, on_stop=offsets.close)


class GroupOffsets:
    """The worker group's committed offsets, read with one long-lived consumer of the group that joins
    nothing (a producer's outbox asks every few seconds which records the workers have read)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader: AIOKafkaConsumer | None = None

    async def read(self, partitions: frozenset[tuple[str, int]]) -> dict[tuple[str, int], int] | None:
        """The next offset the group reads on each partition it has committed on; None if unreadable now."""
        from aiokafka import TopicPartition

        try:
            if self._reader is None:
                self._reader = await group_reader(self.settings)
            out = {}
            for topic, partition in sorted(partitions):
                offset = await self._reader.committed(TopicPartition(topic, partition))
                if offset is not None and offset >= 0:
                    out[(topic, partition)] = offset
            return out
        except Exception as exc:  # noqa: BLE001 (the broker away or restarting: the outbox keeps what it has)
            log.debug("committed offsets of %s not read: %s", self.settings.worker_app_id, exc)
            await self.close()
            return None

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                await reader.stop()
            except Exception:  # noqa: BLE001 (closing a connection to a broker that is gone)
                pass


async def broker_identity(settings: Settings) -> tuple[str, frozenset[str]]:
    """The broker cluster's id (the launcher gives each embedded broker run its own) and its topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=int(settings.kafka_admin_timeout_s * 1000),
                                **client_security(settings))
    await admin.start()
    try:
        cluster = str((await admin.describe_cluster())["cluster_id"])
        return cluster, frozenset(await admin.list_topics())
    finally:
        await admin.close()


async def group_reader(settings: Settings) -> AIOKafkaConsumer:
    """A started consumer of the worker group that never subscribes (reads offsets, joins nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.worker_app_id,
                                enable_auto_commit=False,
                                request_timeout_ms=int(settings.kafka_admin_timeout_s * 1000),
                                **client_security(settings))
    await consumer.start()
    return consumer


async def partition_lag(settings: Settings) -> dict[tuple[str, int], tuple[int, bool]]:
    """Per (signal topic, partition): (records the worker group has not committed yet, committed ever).

    Reads the group's committed offsets without joining the group (no rebalance is caused);
    a partition the group never committed counts from offset 0.
    """
    from aiokafka import TopicPartition

    names = settings.topic_names()
    consumer = await group_reader(settings)
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
