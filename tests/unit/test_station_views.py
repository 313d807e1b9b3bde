"""The ward snapshot on an in-process Redis: the worker's heartbeat decides the ward-wide technical banner."""

from __future__ import annotations

import time

import numpy as np

from stream.alarms.handling import AlertHandling
from stream.state.alerts import AlertStore
from stream.state.heartbeat import HEARTBEAT, beat
from stream.state.patient_status import PatientStatusStore
from stream.station.views import ward_snapshot


async def test_monitoring_is_interrupted_when_the_worker_falls_silent(redis) -> None:
    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id="w"))
    never = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert never.monitoring_interrupted and never.worker_silent_s is None  # no worker has ever reported
    await beat(redis, keep_s=3600)
    alive = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert not alive.monitoring_interrupted and alive.worker_silent_s is None
    assert alive.model_dump_json() == (await ward_snapshot(status, alerts, "w", 30)).model_dump_json()  # nothing to push
    await redis.set(HEARTBEAT, repr(time.time() - 95))
    silent = await ward_snapshot(status, alerts, "w", stale_after_s=30)
    assert silent.monitoring_interrupted and 94 <= silent.worker_silent_s <= 97


async def test_a_bed_without_packets_shows_monitoring_interrupted(redis) -> None:
    from detectors.ctg import analyse_ctg
    from stream.state.patient_status import status_key

    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id="w"))

    analysis = analyse_ctg(np.full(4 * 700, 140.0), np.full(4 * 700, 10.0), t0=0.0)
    for pid in ("p-live", "p-quiet"):
        await _arrive(redis, pid, f"bed-{pid}", None, time.time())
        await status.record_analysis("w", pid, f"bed-{pid}", analysis, t_end=700.0, fhr_now=140.0, baseline_bpm=140.0,
                                     analysed_at=time.time())
    await redis.hset(status_key("p-quiet"), "last_packet_at", repr(time.time() - 120))
    await beat(redis, keep_s=3600)
    tiles = {t.patient_id: t for t in (await ward_snapshot(status, alerts, "w", stale_after_s=30)).patients}
    assert not tiles["p-live"].data_interrupted and tiles["p-quiet"].data_interrupted


def test_the_risk_trend_keeps_one_point_per_five_minutes_for_twelve_hours() -> None:
    from stream.state.patient_status import RISK_KEEP_S, RISK_STEP_S, extend_risk_trend

    trend: list = []
    for minute in range(0, 13 * 60):
        trend = extend_risk_trend(trend, 1000.0 + 60 * minute, minute / 1000)
    assert len(trend) == int(RISK_KEEP_S / RISK_STEP_S) + 1 or len(trend) == int(RISK_KEEP_S / RISK_STEP_S)
    assert trend[-1].p == (13 * 60 - 1) / 1000  # the newest value updates the last point
    assert all(b.t - a.t == RISK_STEP_S for a, b in zip(trend, trend[1:]))
    assert trend[-1].t - trend[0].t <= RISK_KEEP_S


async def _arrive(redis, pid: str, bed: str, ward: str | None, t_end: float) -> None:
    """A packet of the patient's stored as the worker stores it (her bed, arrival time, the ward's index)."""
    from stream.core.schemas import CtgPacket
    from stream.state.windows import PatientWindow, WindowStore

    packet = CtgPacket(patient_id=pid, bed_id=bed, device_id="m", start_ts=t_end - 1, fhr=[140.0] * 4, uc=[10.0] * 4)
    window = PatientWindow(pid, bed, 3600)
    window.add(round(packet.start_ts * 4), *(np.array(c) for c in (packet.fhr, packet.uc)), None)
    await WindowStore(redis, capacity_s=3600).save_packets([(window, packet)], ward_id=ward)


async def _patient(status: PatientStatusStore, redis, pid: str, bed: str, silent_s: float) -> None:
    from stream.state.patient_status import status_key

    await _arrive(redis, pid, bed, "w", time.time() - silent_s)
    await redis.hset(status_key(pid), "last_packet_at", repr(time.time() - silent_s))


async def test_the_wall_shows_each_beds_current_patient_and_lets_the_discharged_go(redis) -> None:
    """A bed taken over by a newer patient shows the newer one; a patient silent for the discharge time
    leaves the wall and the ward index, unless she has an open alarm or the whole worker is silent."""
    from detectors.findings import Finding, Severity

    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id="w"))
    await _patient(status, redis, "p-before", "bed-01", silent_s=3600)  # delivered; bed-01 has a new patient
    await _patient(status, redis, "p-now", "bed-01", silent_s=1)
    await _patient(status, redis, "p-quiet", "bed-02", silent_s=3600)  # monitor off an hour, bed not reused
    await _patient(status, redis, "p-gone", "bed-03", silent_s=7 * 3600)
    await _patient(status, redis, "p-gone-alarmed", "bed-04", silent_s=7 * 3600)
    assert await alerts.apply("p-gone-alarmed", "bed-04", Finding(
        "prolonged_deceleration", Severity.URGENT, 0.0, 240.0, rule="FIGO 2015", sentence="A 4-min deceleration.",
        values={"depth_bpm": 40}))
    await redis.set(HEARTBEAT, repr(time.time() - 3600))  # the worker down an hour: nobody leaves
    down = await ward_snapshot(status, alerts, "w", stale_after_s=30, bed_silent_s=20)
    assert {t.patient_id for t in down.patients} == {"p-now", "p-quiet", "p-gone", "p-gone-alarmed"}
    assert len(await status.ward_patients("w")) == 5  # all still listed
    await beat(redis, keep_s=3600)
    ward = await ward_snapshot(status, alerts, "w", stale_after_s=30, bed_silent_s=20)
    assert {t.patient_id for t in ward.patients} == {"p-now", "p-quiet", "p-gone-alarmed"}
    assert set(await status.ward_patients("w")) == {"p-before", "p-now", "p-quiet", "p-gone-alarmed"}
    await _patient(status, redis, "p-gone", "bed-03", silent_s=0)  # her monitor sends again: she is back
    back = await ward_snapshot(status, alerts, "w", stale_after_s=30, bed_silent_s=20)
    assert "p-gone" in {t.patient_id for t in back.patients}


async def test_each_outage_is_named_by_its_cause_and_the_beds_do_not_blame_their_monitors(redis) -> None:
    """The worker's report names the broker and the models; a silent report is the worker. While the broker is
    away the beds that stopped say so, not 'no data from the monitor'."""
    from stream.state.heartbeat import WorkerReport, read

    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id="w"))
    await _patient(status, redis, "p-1", "bed-01", silent_s=30)
    await beat(redis, keep_s=3600, report=WorkerReport(t=0, broker_unreachable_since=time.time() - 25))
    ward = await ward_snapshot(status, alerts, "w", stale_after_s=8, bed_silent_s=8)
    assert [o.cause for o in ward.outages] == ["broker_unreachable"] and ward.outages[0].alarms_stopped
    (tile,) = ward.patients
    assert tile.data_interrupted and tile.interrupted_by == "broker_unreachable"
    await beat(redis, keep_s=3600, report=WorkerReport(t=0, models_degraded_since=time.time() - 60,
                                                       models_detail="ctg_lstm: timeout"))
    ward = await ward_snapshot(status, alerts, "w", stale_after_s=8, bed_silent_s=8)
    assert [(o.cause, o.alarms_stopped) for o in ward.outages] == [("models_degraded", False)]
    assert "ctg_lstm: timeout" in ward.outages[0].sentence
    (tile,) = ward.patients
    assert tile.data_interrupted and tile.interrupted_by is None  # the broker is fine: this bed's own monitor
    await redis.set(HEARTBEAT, WorkerReport(t=time.time() - 12).model_dump_json())
    ward = await ward_snapshot(status, alerts, "w", stale_after_s=8, bed_silent_s=8)
    assert [o.cause for o in ward.outages] == ["worker_silent"] and ward.patients[0].interrupted_by == "worker_silent"
    await redis.set(HEARTBEAT, repr(time.time()))  # a report written by an older worker: alive, nothing more
    assert (await read(redis)).broker_unreachable_since is None
    assert (await ward_snapshot(status, alerts, "w", stale_after_s=8, bed_silent_s=8)).outages == []


async def test_a_lost_broker_log_is_shown_with_how_many_records_it_held(redis) -> None:
    """``ctgwatch up`` records an embedded broker started again after its log died, with the group's last
    measured lag; the wall shows it, as information (alarms go on), with the count."""
    from stream.state.heartbeat import BROKER_LOSS, BrokerLoss

    status, alerts = PatientStatusStore(redis), AlertStore(redis, AlertHandling(ward_id="w"))
    await beat(redis, keep_s=3600)
    assert (await ward_snapshot(status, alerts, "w", stale_after_s=8)).outages == []
    await redis.set(BROKER_LOSS, BrokerLoss(at=time.time() - 30, unread_records=412,
                                            unread_at=time.time() - 36).model_dump_json())
    (outage,) = (await ward_snapshot(status, alerts, "w", stale_after_s=8)).outages
    assert outage.cause == "broker_log_lost" and not outage.alarms_stopped
    assert "About 412 records the workers had not read" in outage.sentence
