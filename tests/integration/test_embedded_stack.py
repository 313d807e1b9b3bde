"""The embedded stack is real: talk to each server with its production client."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
import redis
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.launcher.stack import status
from stream.core.settings import Settings
from stream.core.topics import load_topics

pytestmark = pytest.mark.integration


async def test_topics_exist_with_their_partition_counts(stack: Settings) -> None:
    specs = load_topics(stack.topics_file)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
    finally:
        await admin.close()
    assert described == {s.name: s.partitions for s in specs}


async def test_produce_and_consume_in_a_consumer_group(stack: Settings) -> None:
    topic = "ctg.packets"
    run = uuid.uuid4().hex
    sent = {f"{run}-{i}".encode(): f"patient-{i % 7}".encode() for i in range(200)}
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value, key in sent.items():
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    group = f"test-{run}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    partitions_of_key: dict[bytes, set[int]] = {}
    try:
        async def drain() -> None:
            while not set(sent) <= set(received):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for rec in records:
                        if rec.value.startswith(run.encode()):
                            received[rec.value] = rec.key
                            partitions_of_key.setdefault(rec.key, set()).add(tp.partition)

        await asyncio.wait_for(drain(), timeout=60)
        await consumer.commit()
        assigned = consumer.assignment()
        committed = {tp: await consumer.committed(tp) for tp in assigned}
    finally:
        await consumer.stop()

    assert received == sent
    # Keyed by patient: one patient's records stay on one partition.
    assert all(len(p) == 1 for p in partitions_of_key.values())
    assert len(assigned) == 12 and all(off is not None for off in committed.values())
    assert any(off > 0 for off in committed.values())
    assert TopicPartition(topic, 0) in assigned


def test_redis_read_write_and_stream(stack: Settings) -> None:
    client = redis.Redis.from_url(stack.redis_dsn, decode_responses=True)
    try:
        key = f"test:{uuid.uuid4().hex}"
        client.hset(key, mapping={"status": "raised", "severity": "urgent"})
        assert client.hgetall(key) == {"status": "raised", "severity": "urgent"}
        stream = f"{key}:audit"
        first = client.xadd(stream, {"action": "raised"})
        client.xadd(stream, {"action": "acknowledged"})
        entries = client.xrange(stream)
        assert [e[1]["action"] for e in entries] == ["raised", "acknowledged"]
        assert entries[0][0] == first
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()


def test_triton_over_http(stack: Settings) -> None:
    client = httpclient.InferenceServerClient(stack.triton_http)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()["version"].startswith("2.")
        assert client.is_model_ready("scale_by_two")
        meta = client.get_model_metadata("scale_by_two")
        assert meta["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        inp = httpclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer("scale_by_two", [inp])
        np.testing.assert_array_equal(result.as_numpy("y"), 2 * x)
    finally:
        client.close()


def test_triton_over_grpc(stack: Settings) -> None:
    client = grpcclient.InferenceServerClient(stack.triton_grpc)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata().version.startswith("2.")
        meta = client.get_model_metadata("scale_by_two")
        assert [o.name for o in meta.outputs] == ["y"]
        x = np.ones((2, 4), dtype=np.float32)
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_array_equal(client.infer("scale_by_two", [inp]).as_numpy("y"), 2 * x)
    finally:
        client.close()


def test_status_reports_every_service_healthy_with_a_version(stack: Settings) -> None:
    rows = {r.name: r for r in status(stack)}
    assert set(rows) == {"broker", "redis", "triton"}
    assert all(r.healthy and r.pid for r in rows.values()), rows
    assert rows["broker"].version.startswith("tansu ")
    assert rows["redis"].version.startswith("redis ")
    assert "scale_by_two" in rows["triton"].version
