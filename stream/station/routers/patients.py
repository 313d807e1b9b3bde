"""A patient's trace (the live hour as the worker analysed it), the archived chart of the whole labour,
the trends, the maternal vital signs and the shift hand-over."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from stream.state.labour_record import TrendPoint
from stream.station import views
from stream.station.deps import AlertsDep, RecordDep, SettingsDep, StatusDep, UserDep, WindowsDep
from stream.station.schemas import BedChart, HandOver, Trace, VitalsPoint

router = APIRouter(prefix="/api/patients", tags=["patients"])

Hours = Annotated[float, Query(gt=0, le=24, description="How many hours back (at most 24, what the labour record keeps).")]


@router.get("/{patient_id}/trace", response_model=Trace)
async def patient_trace(patient_id: str, user: UserDep, windows: WindowsDep, status: StatusDep,
                        settings: SettingsDep, seconds: float = 1800) -> Trace:
    seconds = max(60.0, min(seconds, settings.history_s))
    return await views.trace(windows, status, patient_id, seconds)


@router.get("/{patient_id}/chart", response_model=BedChart)
async def patient_chart(patient_id: str, user: UserDep, record: RecordDep, start: float, end: float) -> BedChart:
    """The archived chart (1 Hz, with its final marks) between two times: the scrollback beyond the live hour."""
    return await views.chart(record, patient_id, start, min(end, start + 24 * 3600))


@router.get("/{patient_id}/trends", response_model=list[TrendPoint])
async def patient_trends(patient_id: str, user: UserDep, record: RecordDep, hours: Hours = 12) -> list[TrendPoint]:
    """One point per 5 min: baseline, variability, decelerations and their area, contractions, class."""
    return await record.trend(patient_id, time.time() - hours * 3600)


@router.get("/{patient_id}/vitals", response_model=list[VitalsPoint])
async def patient_vitals(patient_id: str, user: UserDep, windows: WindowsDep, hours: Hours = 12) -> list[VitalsPoint]:
    """Maternal observations with each reading's MEOWS band (red, yellow), as the chart colours them."""
    return await views.vitals(windows, patient_id, time.time() - hours * 3600)


@router.get("/{patient_id}/handover", response_model=HandOver)
async def patient_handover(patient_id: str, user: UserDep, status: StatusDep, alerts: AlertsDep, record: RecordDep,
                           windows: WindowsDep, hours: Hours = 8) -> HandOver:
    return await views.hand_over(status, alerts, record, windows, patient_id, hours)
