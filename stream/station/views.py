"""What the station shows, read from Redis as the worker wrote it: the ward and a bed's trace.

The station never runs the detectors: the class, the events and the
not-fetal stretches of a bed come from the worker's last analysis
(:mod:`stream.state.patient_status`), so the tile and the bed view agree.
"""

from __future__ import annotations

import time

import numpy as np

from stream.alarms.policy import Priority
from stream.core.schemas import VitalsObservation
from stream.core.settings import Settings
from stream.state.alerts import AlertRecord, AlertStore
from stream.state.audio_pause import AudioPauseStore
from stream.state.heartbeat import BrokerLoss, WorkerReport, read_broker_loss
from stream.state.heartbeat import read as read_heartbeat
from stream.state.labour_record import LabourRecordStore, one_hz
from stream.state.patient_status import PatientStatus, PatientStatusStore
from stream.state.windows import WindowStore, banded_by, meows_bands
from stream.station.schemas import (
    Alert,
    AlertSummary,
    BedChart,
    HandOver,
    Outage,
    StripCell,
    Tile,
    Trace,
    VitalsPoint,
    Ward,
)

#: The wall's class strip covers the last 4 h (PeriWatch Vigilance's short trend).
STRIP_S = 4 * 3600.0


#: A patient whose monitors have been silent this long, with no open alarm, has left the ward
#: (delivered, transferred): her tile leaves the wall and the ward index (her record stays). The
#: default is the setting's (CTGWATCH_DASHBOARD_DISCHARGE_AFTER_S), written down once there.
DISCHARGE_AFTER_S: float = Settings.model_fields["dashboard_discharge_after_s"].default


def on_the_wall(states: list[PatientStatus], alerted: set[str], now: float, *, bed_silent_s: float,
                discharge_after_s: float, worker_alive: bool) -> tuple[list[PatientStatus], list[str]]:
    """Which patients the wall shows, and which have left the ward.

    Why: the ward index holds every patient a bed ever sent for, and without an
    admission feed nothing says when one leaves. A central station shows the
    beds' current patients, so:

    - a patient with an open alarm always stays (it must be seen and acknowledged);
    - a silent patient whose bed has since sent for a newer patient is not shown
      (the bed has a new patient; the old tile would only say "interrupted");
    - a patient silent for ``discharge_after_s`` has left the ward, but only while
      the worker is alive: when the whole stream is down every bed is silent, and
      an outage must not empty the wall.
    """
    newest_on_bed: dict[str, float] = {}
    for s in states:
        if s.last_packet_at is not None:
            newest_on_bed[s.bed_id] = max(newest_on_bed.get(s.bed_id, s.last_packet_at), s.last_packet_at)
    shown: list[PatientStatus] = []
    left: list[str] = []
    for s in states:
        if s.patient_id in alerted or s.last_packet_at is None:
            shown.append(s)
            continue
        silent_s = now - s.last_packet_at
        if worker_alive and silent_s > discharge_after_s:
            left.append(s.patient_id)
        elif not (silent_s > bed_silent_s and newest_on_bed[s.bed_id] > s.last_packet_at):
            shown.append(s)
    return shown, left


async def ward_snapshot(status: PatientStatusStore, alerts: AlertStore, ward_id: str, stale_after_s: float = 30.0,
                        *, record: LabourRecordStore | None = None, audio: AudioPauseStore | None = None,
                        bed_silent_s: float | None = None, discharge_after_s: float = DISCHARGE_AFTER_S) -> Ward:
    """One tile per patient on the wall (sorted by bed; :func:`on_the_wall`), each with its open alerts,
    most severe first, and its 4-h class strip; the ward's audio pause. A bed without packets for
    ``bed_silent_s`` (default: ``stale_after_s``) shows monitoring interrupted."""
    patients = await status.ward_patients(ward_id)
    open_alerts = await alerts.open_alerts()
    by_patient: dict[str, list[AlertSummary]] = {}
    for a in open_alerts:
        by_patient.setdefault(a.patient_id, []).append(summary(a))
    now = time.time()
    report = await read_heartbeat(status.redis)
    age = None if report is None else max(0.0, now - report.t)
    outages = worker_outages(report, now, stale_after_s) + broker_loss_outage(await read_broker_loss(status.redis))
    interrupted = any(o.cause == "worker_silent" for o in outages)  # the same staleness rule, decided once
    stopping = next((o.cause for o in outages if o.alarms_stopped), None)
    silent = stale_after_s if bed_silent_s is None else bed_silent_s
    states, left = on_the_wall(await status.read_many(sorted(set(patients) | set(by_patient))), set(by_patient), now,
                               bed_silent_s=silent, discharge_after_s=discharge_after_s, worker_alive=not interrupted)
    if left:
        await status.leave_ward(ward_id, left)
    pids = [s.patient_id for s in states]
    strips = await record.trends(pids, since=now - STRIP_S) if record is not None else {}
    tiles = []
    for pid, state in zip(pids, states):
        here = sorted(by_patient.get(pid, []), key=lambda a: (-a.severity, a.raised_at))
        quiet = state.last_packet_at is not None and now - state.last_packet_at > silent
        tiles.append(Tile(**state.model_dump(exclude={"model_error", "events", "not_fetal", "risk_trend"}),
                          alerts=here, worst=here[0].severity_name if here else "none", data_interrupted=quiet,
                          interrupted_by=stopping if quiet else None, outages=outages,
                          strip=[StripCell(t=p.t, c=p.classification) for p in strips.get(pid, [])]))
    tiles.sort(key=lambda t: (t.bed_id, t.patient_id))
    # the age only while interrupted: a healthy ward's snapshot stays the same and is not pushed again
    return Ward(ward_id=ward_id, patients=tiles, open_alerts=len(open_alerts), monitoring_interrupted=interrupted,
                worker_silent_s=round(age) if interrupted and age is not None else None,
                audio_paused=await audio.current() if audio is not None else None, outages=outages)


def worker_outages(report: WorkerReport | None, now: float, stale_after_s: float) -> list[Outage]:
    """The outages the worker's heartbeat shows, by cause: the worker silent (its report older than
    ``stale_after_s``, or none), else the broker unreachable, and the models degraded."""
    if report is None or now - report.t > stale_after_s:
        return [Outage(cause="worker_silent", since=None if report is None else report.t, alarms_stopped=True,
                       sentence=("The stream worker is silent: no alarm is being raised. Watch the monitors at the "
                                 "bedside and call IT."))]
    out = []
    if report.broker_unreachable_since is not None:
        out.append(Outage(cause="broker_unreachable", since=report.broker_unreachable_since, alarms_stopped=True,
                          sentence=("The message broker is unreachable: the monitors' data wait in the gateway and "
                                    "are not analysed, so no alarm is raised for them. Watch the monitors at the "
                                    "bedside and call IT.")))
    if report.models_degraded_since is not None:
        out.append(Outage(cause="models_degraded", since=report.models_degraded_since, alarms_stopped=False,
                          sentence=(f"Models degraded ({report.models_detail or 'not answering'}): the rules keep "
                                    "raising alarms; the models' evidence and the compromise risk are missing.")))
    return out


def broker_loss_outage(loss: BrokerLoss | None) -> list[Outage]:
    """An embedded broker started again after its log was lost (recorded by ``up`` and shown for 15 min):
    information, with the count of records the workers had not read."""
    if loss is None:
        return []
    return [Outage(cause="broker_log_lost", since=loss.at, alarms_stopped=False, sentence=loss.sentence())]


def redis_outage(since: float) -> Outage:
    """Redis unreachable, as the station itself finds it (it can read nothing then)."""
    return Outage(cause="redis_unreachable", since=since, alarms_stopped=True,
                  sentence=("The alert store (Redis) is unreachable: alarms and traces cannot be shown or "
                            "stored. Watch the monitors at the bedside and call IT."))


def with_priority(alert: AlertRecord) -> Alert:
    """An alert record with its IEC 60601-1-8 priority and the sentence of every reason."""
    reasons = [r["sentence"] for r in alert.evidence.get("reasons", [])]
    return Alert.model_validate({**alert.model_dump(), "priority": str(Priority.of_severity_name(alert.severity_name)),
                                 "reasons": reasons})


def summary(alert: AlertRecord) -> AlertSummary:
    """An alarm as the ward lists it: its priority and the sentence of every reason."""
    return AlertSummary.model_validate(with_priority(alert).model_dump())


def _json_floats(x: np.ndarray | None) -> list[float | None]:
    return [] if x is None else [None if not np.isfinite(v) else round(float(v), 2) for v in x]


async def trace(windows: WindowStore, status: PatientStatusStore, patient_id: str, seconds: float) -> Trace:
    """The last ``seconds`` at 1 Hz for drawing, with the worker's events, not-fetal spans and class."""
    window = await windows.load(patient_id, "?")
    fhr, uc, mhr, t0 = window.last(seconds)
    if fhr.size == 0:
        return Trace(patient_id=patient_id, t0=None)
    f1, u1, m1 = one_hz(fhr, uc, mhr, window.fs)
    state = await status.read(patient_id)
    shown = [m for m in state.events if m.end > t0]
    not_fetal = [m for m in state.not_fetal if m.end > t0]
    return Trace(
        patient_id=patient_id, t0=t0, fhr=_json_floats(f1), uc=_json_floats(u1),
        mhr=_json_floats(m1), events=shown, not_fetal=not_fetal, baseline_bpm=state.baseline_bpm,
        classification=state.classification, reasons=state.reasons, analysed_at=state.analysed_at,
        anomaly=state.model_error, risk_trend=state.risk_trend,
    )


async def chart(record: LabourRecordStore, patient_id: str, start: float, end: float) -> BedChart:
    """The archived 1-Hz chart between ``start`` and ``end`` with its marks (older than the live hour)."""
    minutes, marks = await record.chart(patient_id, start, end)
    if minutes is None:
        return BedChart(patient_id=patient_id, t0=None)
    return BedChart(patient_id=patient_id, t0=minutes.t0, fhr=_json_floats(minutes.fhr), uc=_json_floats(minutes.uc),
                    mhr=_json_floats(minutes.mhr), marks=marks)


def vitals_point(obs: VitalsObservation) -> VitalsPoint:
    """An observation with the MEOWS band (red, yellow) of each of its own readings, as the paper chart colours it."""
    values: dict[str, float | str] = {name: r.value for name, r in obs.readings().items()}
    if obs.avpu:
        values["avpu"] = obs.avpu
    bands = meows_bands(obs)  # MEOWS scored once per observation
    return VitalsPoint(t=obs.observed_ts, values=values, bands=bands, banded_by=banded_by(bands))


async def vitals(windows: WindowStore, patient_id: str, since: float) -> list[VitalsPoint]:
    return [vitals_point(o) for o in await windows.vitals_history(patient_id, since=since)]


async def hand_over(status: PatientStatusStore, alerts: AlertStore, record: LabourRecordStore, windows: WindowStore,
                    patient_id: str, hours: float) -> HandOver:
    """The last ``hours`` of one bed for the shift change: class history, alarms and who acted, vitals."""
    now = time.time()
    since = now - hours * 3600
    state = await status.read(patient_id)
    return HandOver(
        patient_id=patient_id, bed_id=state.bed_id, since=since, until=now, status=state,
        trend=await record.trend(patient_id, since),
        alerts=[with_priority(a) for a in await alerts.patient_alerts(patient_id, since)],
        vitals=await vitals(windows, patient_id, since))
