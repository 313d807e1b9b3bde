"""The ward overview, as one snapshot and as a live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from stream.station import views
from stream.station.deps import AlertsDep, SettingsDep, StatusDep, UserDep
from stream.station.schemas import Me, Ward
from stream.station.users import may

router = APIRouter(prefix="/api", tags=["ward"])


@router.get("/me", response_model=Me)
async def me(user: UserDep) -> Me:
    actions = ("acknowledge", "escalate", "resolve", "manage_users")
    return Me(user=user.name, role=user.role, csrf=user.csrf,
              may=sorted(a for a in actions if may(user.role, a)))


@router.get("/ward", response_model=Ward)
async def ward(user: UserDep, status: StatusDep, alerts: AlertsDep, settings: SettingsDep) -> Ward:
    return await views.ward_snapshot(status, alerts, settings.ward_id, settings.dashboard_worker_stale_s)


@router.get("/events")
async def events(request: Request, user: UserDep, status: StatusDep, alerts: AlertsDep,
                 settings: SettingsDep) -> StreamingResponse:
    """Server-Sent Events: the ward snapshot whenever it changes, checked every ``dashboard_push_s``."""
    async def stream() -> AsyncIterator[str]:
        last = None
        while not await request.is_disconnected():
            snapshot = (await views.ward_snapshot(status, alerts, settings.ward_id, settings.dashboard_worker_stale_s)).model_dump_json()
            if snapshot != last:
                yield f"event: ward\ndata: {snapshot}\n\n"
                last = snapshot
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(settings.dashboard_push_s)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
