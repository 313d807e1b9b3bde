"""Fault injection for the outage tests and ``make chaos``: a private stack whose services can be
killed and restarted, a known ward to publish, and the checks of what was stored and alerted.

Private means its own broker and Redis on free ports and its own state directory, so killing them
never disturbs the session's shared stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from infra.launcher.process import ManagedProcess
from infra.launcher.stack import down, kill, selected, up
from stream.core.schemas import decode_deadletter
from stream.core.settings import Settings
from stream.sources.ctg_simulator import Scenario
from stream.sources.publishing import Scheduled, merge, time_base
from stream.sources.vitals_simulator import VitalsScenario
from stream.sources.ward import Bed, bed_schedule
from tests.helpers import env_for, read_topic, stack_settings

#: A test ward's alarm policy: signal loss qualifies after 60 s (instead of 10 min), so that an outage
#: read as signal loss would show up within a short test.
SHORT_LOSS_POLICY = json.dumps({"signal_loss": {"qualify_s": 60}})


@contextmanager
def private_stack(state_dir: Path, services: tuple[str, ...] = ("broker", "redis")) -> Iterator[Settings]:
    """Broker and Redis of our own (and Triton with the shipped models when asked), down afterwards."""
    shipped = Settings().triton_model_repository if "triton" in services else None
    settings = stack_settings(state_dir, shipped)
    up(settings, echo=lambda _line: None, only=services)
    try:
        yield settings
    finally:
        down(settings, echo=lambda _line: None, only=services)


def restart(settings: Settings, name: str) -> list[str]:
    """Start a killed service again as ``ctgwatch up`` would; returns what ``up`` said."""
    lines: list[str] = []
    up(settings, echo=lines.append, only=[name])
    return lines


def stall(settings: Settings, name: str) -> int:
    """SIGSTOP a service's process group (a network stall: connections stay open, nothing answers);
    returns the group to resume with :func:`resume`."""
    (service,) = selected(settings, [name])
    rec = ManagedProcess(service.name, settings.run_dir, settings.log_dir).record()
    assert rec is not None, f"{name} is not running"
    os.killpg(rec.pgid, signal.SIGSTOP)
    return rec.pgid


def resume(pgid: int) -> None:
    os.killpg(pgid, signal.SIGCONT)


def crash(settings: Settings, name: str) -> None:
    """kill -9 one service of the private stack."""
    assert kill(settings, name), f"{name} was not running"


def worker_env(settings: Settings, group: str, *, models: bool = False, **extra: str) -> dict[str, str]:
    return env_for(settings, CTGWATCH_WORKER_APP_ID=group, CTGWATCH_WARD_ID=group, CTGWATCH_WORKER_METRICS_PORT="0",
                   CTGWATCH_WORKER_SESSION_TIMEOUT_S="6", CTGWATCH_WORKER_HEARTBEAT_S="1",
                   CTGWATCH_MODELS_ENABLED=str(models).lower(), CTGWATCH_ALARM_POLICY=SHORT_LOSS_POLICY,
                   CTGWATCH_OUTAGE_RETRY_MAX_S="1", **extra)


@dataclass
class KnownWard:
    """Normal beds (no clinical event at all) whose every published packet is known."""

    tag: str
    beds: int = 3
    duration_s: float = 240.0
    speed: float = 4.0
    ward: list[Bed] = field(init=False)

    def __post_init__(self) -> None:
        normal_vitals = VitalsScenario("normal", self.duration_s, 30)
        self.ward = [Bed(i, f"{self.tag}-{i}", f"bed-{i + 1:02d}", Scenario("normal", duration_s=self.duration_s),
                         normal_vitals, 100 + i) for i in range(self.beds)]

    def schedule(self, settings: Settings) -> list[Scheduled]:
        t0 = time_base(self.duration_s, self.speed)
        return list(merge(bed_schedule(b, settings.topic_names(), t0=t0, packet_s=1.0) for b in self.ward))

    def packets_per_bed(self, schedule: list[Scheduled]) -> dict[str, int]:
        counts = {b.patient_id: 0 for b in self.ward}
        for item in schedule:
            if item.record.kind == "ctg":
                counts[item.record.patient_id] += 1
        return counts


def stored_packets(redis: Redis, patient_id: str) -> list[int]:
    """First sample index of each packet stored in the patient's window (sorted)."""
    return sorted(int(score) for _, score in redis.zrange(f"ctgw:win:{patient_id}", 0, -1, withscores=True))


def holes(starts: list[int], step: int = 4) -> int:
    """Packets missing between the first and the last stored one (4 samples per 1-s packet)."""
    return sum((b - a) // step - 1 for a, b in zip(starts, starts[1:]) if b - a > step)


def alerts_of(redis: Redis, tag: str) -> list[dict[str, str]]:
    out = []
    for key in redis.scan_iter(match="ctgw:alert:*", count=1000):
        a = {k.decode(): v.decode() for k, v in redis.hgetall(key).items()}
        if a.get("patient_id", "").startswith(tag + "-"):
            out.append(a)
    return out


def dead_letters_of(settings: Settings, tag: str, timeout_s: float = 5.0) -> list:
    """Dead letters about the ward's patients (read from the start of the dead-letter topic)."""
    kept = asyncio.run(read_topic(settings.bootstrap_servers, settings.topic_names().deadletter,
                                  keep=lambda _k, v: (decode_deadletter(v).patient_id or "").startswith(tag + "-"),
                                  until=lambda _kept: False, timeout_s=timeout_s))
    return [decode_deadletter(v) for _, v in kept]
