"""The ward snapshot on an in-process Redis: the worker's heartbeat decides the ward-wide technical banner."""

from __future__ import annotations

import time

from stream.core.policy import AlertPolicy
from stream.state.alerts import AlertStore
from stream.state.heartbeat import HEARTBEAT, beat
from stream.state.patient_status import PatientStatusStore
from stream.station.views import ward_snapshot


async def test_monitoring_is_interrupted_when_the_worker_falls_silent(redis) -> None:
    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertPolicy(ward_id="w"))
    never = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert never.monitoring_interrupted and never.worker_silent_s is None  # no worker has ever reported
    await beat(redis, keep_s=3600)
    alive = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert not alive.monitoring_interrupted and alive.worker_silent_s is None
    assert alive.model_dump_json() == (await ward_snapshot(status, alerts, "w", 30)).model_dump_json()  # nothing to push
    await redis.set(HEARTBEAT, repr(time.time() - 95))
    silent = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert silent.monitoring_interrupted and 94 <= silent.worker_silent_s <= 97
