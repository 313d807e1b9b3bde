"""What the station shows, read from Redis as the worker wrote it: the ward and a bed's trace.

The station never runs the detectors: the class, the events and the
not-fetal stretches of a bed come from the worker's last analysis
(:mod:`stream.state.patient_status`), so the tile and the bed view agree.
"""

from __future__ import annotations

import time

import numpy as np

from detectors.baseline import to_1hz
from stream.core.alarm_policy import Priority
from stream.state.alerts import AlertStore
from stream.state.heartbeat import age_s as heartbeat_age_s
from stream.state.patient_status import PatientStatusStore
from stream.state.windows import WindowStore
from stream.station.schemas import AlertSummary, Tile, Trace, Ward


async def ward_snapshot(status: PatientStatusStore, alerts: AlertStore, ward_id: str, stale_after_s: float = 30.0) -> Ward:
    """One tile per patient (sorted by bed), each with its open alerts, most severe first."""
    patients = await status.ward_patients(ward_id)
    open_alerts = await alerts.open_alerts()
    by_patient: dict[str, list[AlertSummary]] = {}
    for a in open_alerts:
        by_patient.setdefault(a["patient_id"], []).append(summary(a))
    tiles = []
    now = time.time()
    for pid in set(patients) | set(by_patient):
        state = await status.read(pid)
        here = sorted(by_patient.get(pid, []), key=lambda a: (-a.severity, a.raised_at))
        quiet = state.last_packet_at is not None and now - state.last_packet_at > stale_after_s
        tiles.append(Tile(**state.model_dump(exclude={"model_error", "events", "not_fetal", "risk_trend"}),
                          alerts=here, worst=here[0].severity_name if here else "none", data_interrupted=quiet))
    tiles.sort(key=lambda t: (t.bed_id, t.patient_id))
    age = await heartbeat_age_s(status.redis)
    interrupted = age is None or age > stale_after_s
    # the age only while interrupted: a healthy ward's snapshot stays the same and is not pushed again
    return Ward(ward_id=ward_id, patients=tiles, open_alerts=len(open_alerts), monitoring_interrupted=interrupted,
                worker_silent_s=round(age) if interrupted and age is not None else None)


def summary(alert: dict) -> AlertSummary:
    """An alarm as the ward lists it: its priority and the sentence of every reason."""
    reasons = [r["sentence"] for r in alert.get("evidence", {}).get("reasons", [])]
    return AlertSummary.model_validate({**alert, "priority": str(Priority.of_severity_name(alert["severity_name"])),
                                        "reasons": reasons})


def _json_floats(x: np.ndarray | None) -> list[float | None]:
    return [] if x is None else [None if not np.isfinite(v) else round(float(v), 2) for v in x]


async def trace(windows: WindowStore, status: PatientStatusStore, patient_id: str, seconds: float) -> Trace:
    """The last ``seconds`` at 1 Hz for drawing, with the worker's events, not-fetal spans and class."""
    window = await windows.load(patient_id, "?")
    fhr, uc, mhr, t0 = window.last(seconds)
    if fhr.size == 0:
        return Trace(patient_id=patient_id, t0=None)
    f1, fv = to_1hz(fhr, fhr > 0, window.fs)
    u1, _ = to_1hz(uc, np.ones(uc.size, bool), window.fs)
    m1 = to_1hz(mhr, mhr > 0, window.fs)[0] if mhr is not None else None
    state = await status.read(patient_id)
    shown = [m for m in state.events if m.end > t0]
    not_fetal = [m for m in state.not_fetal if m.end > t0]
    return Trace(
        patient_id=patient_id, t0=t0, fhr=_json_floats(np.where(fv, f1, np.nan)), uc=_json_floats(u1),
        mhr=_json_floats(m1), events=shown, not_fetal=not_fetal, baseline_bpm=state.baseline_bpm,
        classification=state.classification, reasons=state.reasons, analysed_at=state.analysed_at,
        anomaly=state.model_error, risk_trend=state.risk_trend,
    )
