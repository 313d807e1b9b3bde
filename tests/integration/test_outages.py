"""Outages of the services we run lose no sample and raise no clinical alert (issue 15's table).

Each test runs its own broker and Redis (tests/faults.py), a real worker process and a known ward of
normal beds published through the producers' outbox, kills one service with SIGKILL while the ward
streams, starts it again as ``ctgwatch up`` does, and checks: every published packet is in the
patient's stored window without a hole, nothing valid was dead-lettered, and no alert was raised
(the beds are normal: an alert could only come from the outage).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from stream.core.kafka import producer_outbox
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


def test_redis_killed_while_streaming_loses_nothing_and_dead_letters_nothing(tmp_path) -> None:
    tag = f"rds{uuid.uuid4().hex[:6]}"
    with private_stack(tmp_path / "stack") as settings:
        ward = KnownWard(tag)
        log = tmp_path / "worker.log"
        with ctgwatch_process(["worker"], worker_env(settings, f"g-{tag}"), log, ready="[^Worker]: Ready"):
            said = _stream_with_fault(settings, ward, "redis", at_s=12.0, down_s=15.0)
            _check_nothing_lost(settings, ward, log)
        text = log.read_text(errors="replace")
        assert "Redis is unavailable" in text and "service back after" in text
        assert "Traceback" not in text  # an outage is one warning, not a traceback per packet
        assert any("restarted after a crash" in line for line in said)


def test_broker_killed_and_recreated_producers_resend_and_worker_resumes(tmp_path) -> None:
    tag = f"brk{uuid.uuid4().hex[:6]}"
    with private_stack(tmp_path / "stack") as settings:
        ward = KnownWard(tag)
        log = tmp_path / "worker.log"
        with ctgwatch_process(["worker"], worker_env(settings, f"g-{tag}"), log, ready="[^Worker]: Ready"):
            said = _stream_with_fault(settings, ward, "broker", at_s=12.0, down_s=15.0)
            _check_nothing_lost(settings, ward, log)
        assert any("RECREATED" in line and "memory only" in line for line in said), said
