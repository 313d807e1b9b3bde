"""A patient's trace (as the worker analysed it) and maternal vital signs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from stream.state.windows import WindowStore
from stream.station import views
from stream.station.deps import RedisDep, SettingsDep, StatusDep, UserDep
from stream.station.schemas import Trace

router = APIRouter(prefix="/api/patients", tags=["patients"])


@router.get("/{patient_id}/trace", response_model=Trace)
async def patient_trace(patient_id: str, user: UserDep, redis: RedisDep, status: StatusDep,
                        settings: SettingsDep, seconds: float = 1800) -> Trace:
    seconds = max(60.0, min(seconds, settings.history_s))
    return await views.trace(WindowStore(redis, capacity_s=settings.history_s), status, patient_id, seconds)


@router.get("/{patient_id}/vitals")
async def patient_vitals(patient_id: str, user: UserDep, redis: RedisDep, settings: SettingsDep) -> list[dict[str, Any]]:
    history = await WindowStore(redis, capacity_s=settings.history_s).vitals_history(patient_id)
    return [json.loads(o.model_dump_json(exclude_none=True)) for o in history]
