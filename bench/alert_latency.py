"""Benchmark: latency from a packet's publish to its alert in Redis, through the real pipeline.

Starts its own embedded stack (free ports) and one worker, puts a background
load of simulated beds streaming in real time, then runs trial patients: each
sends 2 min of normal trace, then real-time packets of signal loss; the packet
that completes 15 s of loss must raise the technical ``signal_alarm``. The
worker runs with the alarm policy changed so that 15 s of loss qualifies at
once (``CTGWATCH_ALARM_POLICY``; the ward's default waits 20 min), so the
figure is the path's latency, not the policy's. Latency = the alert's
``raised_at`` (worker clock) minus the wall time that packet was published
(same machine, same clock).

Run: python bench/alert_latency.py [--beds 20] [--trials 40]   (writes a docs/BENCHMARKS.md section)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bench._report import write_section  # noqa: E402
from infra.launcher.stack import down, up  # noqa: E402
from stream.core.kafka import producer_outbox, start_producer  # noqa: E402
from stream.core.ports import free_port  # noqa: E402
from stream.core.redis_values import as_text  # noqa: E402
from stream.core.schemas import CtgPacket, encode  # noqa: E402
from stream.core.settings import Settings  # noqa: E402
from stream.sources.publishing import merge, publish_paced, time_base  # noqa: E402
from stream.sources.ward import assign_beds, bed_schedule  # noqa: E402


def packet(pid: str, start: float, fhr: float) -> CtgPacket:
    return CtgPacket(patient_id=pid, bed_id=f"b-{pid}", device_id="bench", start_ts=start, fhr=[fhr] * 4, uc=[15.0] * 4)


async def trial(settings: Settings, producer, redis: Redis, pid: str, delay: float) -> float | None:
    await asyncio.sleep(delay)
    now = time.time()
    history_start = now - 120
    for i in range(120):
        await producer.send(settings.topic_names().ctg, encode(packet(pid, history_start + i, 140.0)), key=pid.encode())
    published: dict[float, float] = {}
    t = now
    for _ in range(20):  # real time: one packet of loss per second
        target = t + 1.0
        await asyncio.sleep(max(0.0, target - time.time()))
        p = packet(pid, t, 0.0)
        fut = await producer.send(settings.topic_names().ctg, encode(p), key=pid.encode())
        published[round(round(p.start_ts * 4) / 4 + len(p.fhr) / 4, 2)] = time.time()  # the window's sample grid
        await fut
        t = target
    for _ in range(100):
        for aid in await redis.smembers(f"ctgw:open:bed:b-{pid}"):
            alert = await redis.hgetall(f"ctgw:alert:{as_text(aid)}")
            if alert.get(b"kind") == b"signal_alarm":
                end = json.loads(alert[b"evidence"])["findings"][0]["end_s"]
                sent = published.get(round(end, 2))
                return None if sent is None else float(alert[b"raised_at"]) - sent
        await asyncio.sleep(0.1)
    return None


async def measure(settings: Settings, beds: int, trials: int) -> list[float]:
    producer = await start_producer(settings, linger_ms=0)
    redis = Redis.from_url(settings.redis_dsn)
    ward = assign_beds(beds, seed=3, duration_s=3600)
    outbox = await producer_outbox(settings, "bench-load", max_records=100_000, linger_ms=0).start()
    load = asyncio.create_task(publish_paced(
        outbox, merge(bed_schedule(b, settings.topic_names(), t0=time_base(3600, 1.0), packet_s=1.0) for b in ward),
        speed=1.0))
    try:
        results = await asyncio.gather(*(trial(settings, producer, redis, f"lat-{i}", i * 0.7) for i in range(trials)))
    finally:
        load.cancel()
        await outbox.stop(flush_timeout_s=1.0)
        await producer.stop()
        await redis.aclose()
    return [r for r in results if r is not None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp())
    ports = [free_port() for _ in range(5)]
    settings = Settings(state_dir=state, kafka_bootstrap=None, redis_url=None, triton_url=None,
                        broker_port=ports[0], redis_port=ports[1], triton_http_port=ports[2],
                        triton_grpc_port=ports[3], triton_metrics_port=ports[4])
    up(settings, echo=lambda _l: None)
    env = {**os.environ, **settings.client_env(), "CTGWATCH_WORKER_METRICS_PORT": "0",
           "CTGWATCH_ALARM_POLICY": json.dumps({"signal_loss": {"qualify_s": 0}})}
    log = open(state / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=env, stdout=log, stderr=log)
    try:
        while b"[^Worker]: Ready" not in (state / "worker.log").read_bytes():
            time.sleep(0.5)
        latencies = asyncio.run(measure(settings, args.beds, args.trials))
    finally:
        worker.terminate()
        worker.wait(30)
        down(settings, echo=lambda _l: None)
    ms = np.array(latencies) * 1e3
    body = "\n".join([
        f"Command: `python bench/alert_latency.py --beds {args.beds} --trials {args.trials}`. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores; embedded Tansu, redis-server, Triton (models on), one worker; "
        f"{args.beds} simulated beds streaming 1-s packets in real time as background load. Each trial patient's "
        "packet that completes 15 s of signal loss is timed from its publish to the alert's `raised_at` in Redis.",
        "",
        "| trials timed | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|",
        f"| {len(ms)} of {args.trials} | {np.percentile(ms, 50):.0f} | {np.percentile(ms, 90):.0f} | "
        f"{np.percentile(ms, 99):.0f} | {ms.max():.0f} |",
    ])
    print(body)
    write_section("Sample to alert latency (publish -> alert in Redis)", body)


if __name__ == "__main__":
    main()
