"""Probe: does the embedded Tansu broker honour a consumer's least fetch size, and what do its fetches cost it?

Why: beside a worker that drains its records faster, the embedded broker used more CPU (docs/BENCHMARKS.md,
"Capacity A/B"). If Tansu answered every fetch at once whatever its size, a fast consumer would fetch a few
records at a time, and a least fetch size would be the cure. This starts the stack's embedded Tansu alone
(``ctgwatch up``'s broker, on a free loopback port), produces 400 records of 2.5 kB a second (20 every 50 ms,
8 partitions) for 4 s, and reads them with each fetch wait and least fetch size given: if Tansu honours the
least size, the batches grow and the delivery takes longer. Each setting also reports the broker's CPU (its
process time over the reading, as a share of a core), and the first rows the CPU of a consumer that reads
nothing, its fetch always waiting in the broker.

Run: python bench/tansu_fetch_min_bytes.py [--settings 100:1,100:65536,500:1]  (fetch_max_wait_ms:fetch_min_bytes)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiokafka  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.capacity import cpu_seconds  # noqa: E402
from infra.launcher.process import ManagedProcess  # noqa: E402
from infra.launcher.stack import down, up  # noqa: E402
from stream.core.ports import free_port  # noqa: E402
from stream.core.settings import Settings  # noqa: E402

RECORD_BYTES = 2500
BURST, BURST_EVERY_S, SECONDS, PARTITIONS = 20, 0.05, 4.0, 8


async def idle_cost(bootstrap: str, topic: str, broker_pid: int, max_wait_ms: int) -> dict[str, float]:
    """The broker's CPU while one consumer with this fetch wait reads an empty topic for 5 s."""
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                         fetch_max_wait_ms=max_wait_ms, group_id=None)
    await consumer.start()
    try:
        await asyncio.sleep(1.0)
        used, started = cpu_seconds(broker_pid), time.monotonic()
        while time.monotonic() - started < 5.0:
            await consumer.getmany(timeout_ms=200)
        share = (cpu_seconds(broker_pid) - used) / (time.monotonic() - started)
    finally:
        await consumer.stop()
    return {"idle_consumer_max_wait_ms": max_wait_ms, "broker_cpu": round(share, 3)}


async def read_with(bootstrap: str, topic: str, broker_pid: int, max_wait_ms: int, min_bytes: int) -> dict[str, float]:
    """Produce the load to ``topic`` and read it back with these fetch settings: batch sizes, delays, broker CPU."""
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                         fetch_min_bytes=min_bytes, fetch_max_wait_ms=max_wait_ms, group_id=None)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        await asyncio.sleep(1.0)  # the consumer is at the end of the log before the first record
        stop = time.monotonic() + SECONDS
        sent: dict[int, float] = {}

        async def produce() -> None:
            n = 0
            while time.monotonic() < stop:
                for _ in range(BURST):
                    sent[n] = time.monotonic()
                    await producer.send(topic, str(n).encode().ljust(RECORD_BYTES, b"x"), partition=n % PARTITIONS)
                    n += 1
                await asyncio.sleep(BURST_EVERY_S)

        used, started = cpu_seconds(broker_pid), time.monotonic()
        producing = asyncio.create_task(produce())
        batches: list[int] = []
        delays: list[float] = []
        while time.monotonic() < stop + 0.5:
            got = await consumer.getmany(timeout_ms=500)
            records = [r for rs in got.values() for r in rs]
            if records:
                now = time.monotonic()
                batches.append(len(records))
                delays.extend(now - sent[int(r.value.rstrip(b"x"))] for r in records if r.value is not None)
        broker_cpu = (cpu_seconds(broker_pid) - used) / (time.monotonic() - started)
        await producing
    finally:
        await producer.stop()
        await consumer.stop()
    delays.sort()
    return {"max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "broker_cpu": round(broker_cpu, 3),
            "batches": len(batches), "records_per_batch_median": statistics.median(batches),
            "delivery_median_ms": round(1000 * statistics.median(delays)),
            "delivery_p99_ms": round(1000 * delays[int(0.99 * (len(delays) - 1))])}


async def probe(bootstrap: str, broker_pid: int, settings: list[tuple[int, int]]) -> None:
    idle_waits = [100, 1000]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"probe-{i}", PARTITIONS, 1) for i in range(len(settings) + 2)])
    finally:
        await admin.close()
    for i, wait in enumerate(idle_waits):
        print(await idle_cost(bootstrap, f"probe-{i}", broker_pid, wait), flush=True)
    for i, (wait, size) in enumerate(settings, start=len(idle_waits)):
        print(await read_with(bootstrap, f"probe-{i}", broker_pid, wait, size), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="100:1,100:65536,500:1",
                        help="comma-separated fetch_max_wait_ms:fetch_min_bytes pairs to read with")
    settings = [(int(w), int(b)) for w, b in (pair.split(":") for pair in parser.parse_args().settings.split(","))]
    # the stack's own embedded broker, alone, on a free port, with its state in a directory of its own
    stack = Settings(state_dir=Path(tempfile.mkdtemp(prefix="ctgwatch-fetch-probe-")), kafka_bootstrap=None,
                     broker_port=free_port())
    up(stack, echo=lambda _line: None, only=["broker"])
    try:
        broker = ManagedProcess("broker", stack.run_dir, stack.log_dir).record()
        assert broker is not None, "the broker was started and answered, so its pid file is there"
        asyncio.run(probe(stack.bootstrap_servers, broker.pid, settings))
    finally:
        down(stack, echo=lambda _line: None, only=["broker"])


if __name__ == "__main__":
    main()
