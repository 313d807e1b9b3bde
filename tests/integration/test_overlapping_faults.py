"""Two faults in a row lose nothing the gateway acknowledged, and the gap they leave is no patient finding.

The scenario an outside probe found: kill -9 the worker, wait 75 s, kill -9 the (embedded, memory-only)
broker, wait 10 s, start both again. Before, the gateway's outbox kept what the broker had acknowledged for
30 s only, so 57 s of every patient's packets were never stored, and the hole read as FHR 0: "FHR signal
lost for 79 s; check the transducer" on every bed. Now the outbox keeps each acknowledged record until the
worker group has committed past it, and a hole is no data.

Private broker and Redis (tests/faults.py), the gateway over HTTP and a worker as processes; two monitors
post 1-s packets (after an 11-min backlog, so the FIGO analysis runs) and count what the gateway answered
202 for. Checked: every acknowledged packet is in its patient's stored window; no notice ever asks for the
transducer; while the worker is down the ward snapshot (what every open wall shows) names it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid

import httpx
import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from stream.alarms.handling import AlertHandling
from stream.core.ports import free_port
from stream.gateway.devices import DeviceRegistry
from stream.state.alerts import AlertStore
from stream.state.heartbeat import HEARTBEAT, WorkerReport
from stream.state.patient_status import PatientStatusStore, status_key
from stream.station.views import ward_snapshot
from tests.faults import crash, private_stack, restart, stored_packets, worker_env
from tests.helpers import ctgwatch_process, spawn_ctgwatch, stop_process

pytestmark = pytest.mark.integration
BACKLOG_S = 660


class Monitors(threading.Thread):
    """Two bedside monitors posting to the gateway: the backlog in batches, then one packet a second each."""

    def __init__(self, url: str, token: str, patients: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.patients = url, token, patients
        self.acknowledged: dict[str, set[int]] = {p: set() for p in patients}  # first sample index of each
        self.stopping = threading.Event()
        self.backlog_done = threading.Event()
        self.refused = 0

    def _packet(self, patient: str, t: int) -> dict:
        fhr = 140.0 + 6 * ((t % 20) / 10 - 1)  # some variability, never 0: a normal trace
        return dict(kind="ctg", patient_id=patient, bed_id=f"bed-{patient[-1]}", device_id="mon-ov", start_ts=float(t),
                    fhr=[fhr, fhr + 1, fhr, fhr - 1], uc=[12.0] * 4)

    def _post(self, client: httpx.Client, records: list[dict]) -> None:
        while not self.stopping.is_set():
            try:
                r = client.post("/v1/ingest", json={"records": records},
                                headers={"Authorization": f"Bearer {self.token}"})
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if r.status_code == 202:
                for rec in records:
                    self.acknowledged[rec["patient_id"]].add(int(rec["start_ts"] * 4))
                return
            self.refused += 1  # 503: the outbox is full; the monitor keeps the data and tries again
            time.sleep(1)

    def run(self) -> None:
        now = int(time.time())
        t0 = now - BACKLOG_S
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for start in range(t0, now, 60):
                for patient in self.patients:
                    self._post(client, [self._packet(patient, t) for t in range(start, min(start + 60, now))])
            self.backlog_done.set()
            t = now
            while not self.stopping.is_set():
                while t < time.time() - 1:
                    self._post(client, [self._packet(p, t) for p in self.patients])
                    t += 1
                time.sleep(0.2)


def _lag_measured(redis: Redis) -> bool:
    raw = redis.get(HEARTBEAT)
    return raw is not None and WorkerReport.model_validate_json(raw).unread_records is not None


def _sentences(redis_dsn: str, patients: list[str]) -> set[str]:
    async def go() -> set[str]:
        redis = AsyncRedis.from_url(redis_dsn)
        try:
            store = PatientStatusStore(redis)
            return {n.sentence for p in patients for n in (await store.read(p)).notices}
        finally:
            await redis.aclose()

    return asyncio.run(go())


def _outages(redis_dsn: str, ward: str) -> list[str]:
    async def go() -> list[str]:
        redis = AsyncRedis.from_url(redis_dsn)
        try:
            snap = await ward_snapshot(PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id=ward)), ward,
                                       stale_after_s=8, bed_silent_s=8)
            return [o.cause for o in snap.outages]
        finally:
            await redis.aclose()

    return asyncio.run(go())


def test_worker_down_then_the_broker_lost_loses_nothing_the_gateway_acknowledged(tmp_path) -> None:
    group = f"ov-{uuid.uuid4().hex[:6]}"
    patients = [f"{group}-1", f"{group}-2"]
    with private_stack(tmp_path / "state") as settings:
        http_port = free_port()
        tokens = tmp_path / "tokens.json"
        token = DeviceRegistry(tokens).add("mon-ov")
        env = worker_env(settings, group, CTGWATCH_GATEWAY_HTTP_PORT=str(http_port),
                         CTGWATCH_GATEWAY_MLLP_PORT=str(free_port()), CTGWATCH_GATEWAY_TOKENS_FILE=str(tokens))
        redis = Redis.from_url(settings.redis_dsn)
        worker = spawn_ctgwatch(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready")
        monitors = Monitors(f"http://127.0.0.1:{http_port}", token, patients)
        seen: set[str] = set()
        try:
            with ctgwatch_process(["gateway"], env, tmp_path / "gateway.log", ready="gateway ready"):
                monitors.start()
                assert monitors.backlog_done.wait(120)
                deadline = time.monotonic() + 120  # the backlog stored and analysed: the FIGO class is shown
                while time.monotonic() < deadline and not all(
                        redis.hget(status_key(p), "classification") for p in patients):
                    time.sleep(1)
                deadline = time.monotonic() + 60  # and the worker has measured its lag once (up reports it)
                while time.monotonic() < deadline and not _lag_measured(redis):
                    time.sleep(1)
                os.killpg(worker.pid, signal.SIGKILL)
                killed = time.monotonic()
                named = False
                while time.monotonic() - killed < 75:
                    named = named or "worker_silent" in _outages(settings.redis_dsn, group)
                    seen |= _sentences(settings.redis_dsn, patients)
                    time.sleep(3)
                assert named, "the worker's outage was not named on the ward snapshot"
                crash(settings, "broker")
                time.sleep(10)
                said = restart(settings, "broker")
                assert any("RECREATED" in line for line in said), said
                # the count the lost log held, from the group's last measured lag (the dead worker's here)
                assert any("records the workers had not read were in its log" in line for line in said), said
                assert "broker_log_lost" in _outages(settings.redis_dsn, group)
                worker = spawn_ctgwatch(["worker"], env, tmp_path / "worker2.log", ready="[^Worker]: Ready",
                                        timeout_s=90)
                time.sleep(20)  # the monitors go on through the recovery
                monitors.stopping.set()
                monitors.join(60)
                deadline = time.monotonic() + 120
                missing: dict[str, int] = {}
                while time.monotonic() < deadline:
                    seen |= _sentences(settings.redis_dsn, patients)
                    missing = {p: len(monitors.acknowledged[p] - set(stored_packets(redis, p))) for p in patients}
                    if not any(missing.values()):
                        break
                    time.sleep(2)
                gateway_log = (tmp_path / "gateway.log").read_text()
        finally:
            monitors.stopping.set()
            stop_process(worker)
    acknowledged = sum(len(v) for v in monitors.acknowledged.values())
    assert acknowledged > 2 * (BACKLOG_S + 100), acknowledged
    assert not any(missing.values()), (f"acknowledged by the gateway but never stored: {missing} of {acknowledged}; "
                                       f"gateway log:\n{gateway_log[-2000:]}")
    assert not any("transducer" in s for s in seen), seen
    assert "sending again" in gateway_log, gateway_log[-2000:]
