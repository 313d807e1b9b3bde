"""Outages of the services we run lose no sample and raise no clinical alert (the outage table of docs/RELIABILITY.md).

Each test runs its own broker and Redis (tests/faults.py), a real worker process and a known ward of
normal beds published through the producers' outbox, kills one service with SIGKILL while the ward
streams, starts it again as ``ctgwatch up`` does, and checks: every published packet is in the
patient's stored window without a hole, nothing valid was dead-lettered, and no alert was raised
(the beds are normal: an alert could only come from the outage).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from stream.core.kafka import producer_outbox
from stream.core.schemas import CtgPacket, DeadLetter, RejectCode, encode, record_key
from stream.sources.publishing import publish_paced
from tests.faults import (
    KnownWard,
    alerts_of,
    crash,
    dead_letters_of,
    holes,
    private_stack,
    restart,
    stored_packets,
    worker_env,
)
from tests.helpers import ctgwatch_process

pytestmark = pytest.mark.integration


def _stream_with_fault(settings, ward: KnownWard, service: str, *, at_s: float, down_s: float) -> list[str]:
    """Publish the ward in real time (x ward.speed); kill ``service`` at ``at_s`` for ``down_s``."""
    items = ward.schedule(settings)
    said: list[str] = []

    async def run() -> None:
        async with producer_outbox(settings, "test-ward", max_records=100_000) as outbox:
            publishing = asyncio.create_task(publish_paced(outbox, items, speed=ward.speed))
            await asyncio.sleep(at_s)
            crash(settings, service)
            await asyncio.sleep(down_s)
            said.extend(await asyncio.to_thread(restart, settings, service))
            await publishing

    asyncio.run(run())
    return said


def _wait_stored(redis: Redis, expected: dict[str, int], timeout_s: float = 90.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = {pid: redis.zcard(f"ctgw:win:{pid}") for pid in expected}
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(1.0)


def _check_nothing_lost(settings, ward: KnownWard, log: Path) -> None:
    redis = Redis.from_url(settings.redis_dsn)
    expected = ward.packets_per_bed(ward.schedule(settings))
    assert _wait_stored(redis, expected) == expected, log.read_text(errors="replace")[-3000:]
    for pid in expected:
        assert holes(stored_packets(redis, pid)) == 0
    assert dead_letters_of(settings, ward.tag) == []
    assert alerts_of(redis, ward.tag) == [], "an outage was read as a clinical or signal event"


#: What each outage test expects the logs and ``up`` to say.
SAID = {
    # an outage is one warning and one "back" line, not a traceback per packet
    "redis": (lambda worker_log, up_lines: "Redis is unavailable" in worker_log and "service back after" in worker_log
              and "Traceback" not in worker_log and any("restarted after a crash" in x for x in up_lines)),
    # `up` says plainly that the broker was recreated and its history is gone; the worker restarts on it
    "broker": (lambda worker_log, up_lines: "the broker was recreated" in worker_log
               and any("RECREATED" in x and "memory only" in x for x in up_lines)),
}


@pytest.mark.parametrize("service", ["redis", "broker"])
def test_service_killed_while_streaming_loses_nothing_and_dead_letters_nothing(tmp_path, service: str) -> None:
    tag = f"{service[:3]}{uuid.uuid4().hex[:6]}"
    with private_stack(tmp_path / "stack") as settings:
        ward = KnownWard(tag)
        log = tmp_path / "worker.log"
        with ctgwatch_process(["worker"], worker_env(settings, f"g-{tag}"), log, ready="[^Worker]: Ready"):
            said = _stream_with_fault(settings, ward, service, at_s=12.0, down_s=15.0)
            _check_nothing_lost(settings, ward, log)
        assert SAID[service](log.read_text(errors="replace"), said), said


def test_deadletter_replay_fills_the_hole_an_outage_left_in_older_versions(tmp_path) -> None:
    """A valid packet dead-lettered as 'internal' (what older versions did during a Redis outage) is sent
    again with `ctgwatch deadletter replay --code internal` and lands at its place in the stored window."""
    tag = f"dlr{uuid.uuid4().hex[:6]}"
    patient = f"{tag}-0"
    with private_stack(tmp_path / "stack") as settings:
        now = time.time()
        packets = [CtgPacket(patient_id=patient, bed_id="bed-01", device_id="mon-1", start_ts=now - 60 + k,
                             fhr=[140.0, 141.0, 142.0, 141.0], uc=[10.0, 11.0, 12.0, 11.0]) for k in range(10)]
        lost = packets.pop(4)
        letter = DeadLetter.of(encode(lost), code=RejectCode.INTERNAL, reason="processing failed: ConnectionError",
                               source="kafka:ctg.packets[0]@4", received_ts=now, patient_id=patient)
        env = worker_env(settings, f"g-{tag}")
        redis = Redis.from_url(settings.redis_dsn)
        with ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"):
            async def publish() -> None:
                async with producer_outbox(settings, "test", max_records=100) as outbox:
                    for p in packets:
                        await outbox.put("ctg.packets", record_key(p), encode(p))
                    await outbox.put("ingest.deadletter", record_key(letter), encode(letter))

            asyncio.run(publish())
            assert _wait_stored(redis, {patient: 9}) == {patient: 9}
            assert holes(stored_packets(redis, patient)) == 1
            listing = subprocess.run([sys.executable, "-m", "stream.cli", "deadletter", "list"], env=env,
                                     capture_output=True, text=True, timeout=60)
            assert "internal" in listing.stdout and "1 dead letter(s)" in listing.stdout, listing.stderr
            out = subprocess.run([sys.executable, "-m", "stream.cli", "deadletter", "replay", "--code", "internal"],
                                 env=env, capture_output=True, text=True, timeout=60)
            assert "sent 1 record(s) again" in out.stdout, out.stdout + out.stderr
            assert _wait_stored(redis, {patient: 10}, timeout_s=30) == {patient: 10}
        assert holes(stored_packets(redis, patient)) == 0
        assert len(dead_letters_of(settings, tag)) == 1  # only the original: the replay was not refused
