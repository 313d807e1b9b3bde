"""What the dashboard shows, read from Redis (the worker writes it): ward, traces, vitals, alerts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from redis.asyncio import Redis

from detectors.baseline import to_1hz
from detectors.ctg import analyse_ctg
from detectors.runs import runs
from stream.state.alerts import AlertStore
from stream.state.windows import WindowStore

_NUMERIC = ("fhr_now", "baseline_bpm", "t_end", "meows_red", "meows_yellow", "analysed_at", "vitals_ts")


def _status(raw: dict) -> dict[str, Any]:
    d = {k.decode(): v.decode() for k, v in raw.items()}
    for key in _NUMERIC:
        if d.get(key):
            d[key] = float(d[key])
        else:
            d.pop(key, None)
    for key in ("model_evidence", "model_error"):
        if key in d:
            d[key] = json.loads(d[key])
    return d


async def ward_snapshot(redis: Redis, alerts: AlertStore, ward_id: str) -> dict[str, Any]:
    """One tile per patient (newest beds first by bed id), with its open alerts."""
    patients = [p.decode() for p in await redis.zrange(f"ctgw:patients:{ward_id}", 0, -1)]
    open_alerts = await alerts.open_alerts()
    by_patient: dict[str, list] = {}
    for a in open_alerts:
        by_patient.setdefault(a["patient_id"], []).append(_alert_summary(a))
    tiles = []
    for pid in set(patients) | set(by_patient):
        status = _status(await redis.hgetall(f"ctgw:patient:{pid}"))
        status.pop("model_error", None)
        alerts_here = sorted(by_patient.get(pid, []), key=lambda a: (-a["severity"], a["raised_at"]))
        tiles.append({"patient_id": pid, "bed_id": status.get("bed_id", "?"), **status,
                      "alerts": alerts_here, "worst": alerts_here[0]["severity_name"] if alerts_here else "none"})
    tiles.sort(key=lambda t: (t["bed_id"], t["patient_id"]))
    return {"ward_id": ward_id, "patients": tiles, "open_alerts": len(open_alerts)}


def _alert_summary(a: dict) -> dict[str, Any]:
    keep = ("id", "patient_id", "bed_id", "kind", "severity", "severity_name", "status", "raised_at", "updated_at",
            "sentence", "rule", "ack_by", "condition_active", "escalations", "origin")
    return {k: a[k] for k in keep if k in a}


async def trace(redis: Redis, patient_id: str, seconds: float, capacity_s: float) -> dict[str, Any]:
    """The last ``seconds`` at 1 Hz for drawing, with detected events and the model's abnormal seconds."""
    window = await WindowStore(redis, capacity_s=capacity_s).load(patient_id, "?")
    fhr, uc, mhr, t0 = window.last(seconds)
    if fhr.size == 0:
        return {"patient_id": patient_id, "t0": None, "fhr": [], "uc": [], "mhr": [], "events": [], "not_fetal": [],
                "anomaly": None}
    f1, fv = to_1hz(fhr, fhr > 0, window.fs)
    u1, _ = to_1hz(uc, np.ones(uc.size, bool), window.fs)
    m1 = to_1hz(mhr, mhr > 0, window.fs)[0] if mhr is not None else None
    analysis = analyse_ctg(fhr, uc, mhr=mhr, t0=t0)
    events = [{"kind": "acceleration", "start": t0 + e.start, "end": t0 + e.end} for e in analysis.accelerations]
    events += [{"kind": f"{d.kind}_deceleration", "start": t0 + d.excursion.start, "end": t0 + d.excursion.end}
               for d in analysis.decelerations]
    events += [{"kind": "contraction", "start": t0 + c.onset, "end": t0 + c.end} for c in analysis.contractions]
    # Stretches the signal-quality detector judged not to be the fetal heart, drawn over the trace
    # so that a clinician sees what the analysis left out and why.
    not_fetal = [{"kind": kind, "start": t0 + a / window.fs, "end": t0 + b / window.fs}
                 for kind, mask in (("maternal_hr_capture", analysis.quality.maternal),
                                    ("halving_doubling", analysis.quality.ratio_error))
                 for a, b in runs(mask)]
    status = _status(await redis.hgetall(f"ctgw:patient:{patient_id}"))

    def clean(x: np.ndarray | None) -> list:
        return [] if x is None else [None if not np.isfinite(v) else round(float(v), 2) for v in x]

    return {
        "patient_id": patient_id, "t0": t0, "fs": 1.0, "fhr": clean(np.where(fv, f1, np.nan)), "uc": clean(u1),
        "mhr": clean(m1), "events": events, "not_fetal": not_fetal, "baseline_bpm": status.get("baseline_bpm"),
        "classification": analysis.classification, "reasons": analysis.reasons,
        "anomaly": status.get("model_error"),
    }


async def vitals(redis: Redis, patient_id: str, capacity_s: float) -> list[dict[str, Any]]:
    history = await WindowStore(redis, capacity_s=capacity_s).vitals_history(patient_id)
    return [json.loads(o.model_dump_json(exclude_none=True)) for o in history]
