"""The ward overview, as one snapshot and as a live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from stream.state.audio_pause import AudioPause
from stream.station.deps import (
    SIGNED_OUT_EVENT,
    ActingUserDep,
    AudioDep,
    SessionRecheckDep,
    SettingsDep,
    UserDep,
    WardNowDep,
)
from stream.station.schemas import AudioPauseBody, Me, Tile, Ward
from stream.station.users import may

router = APIRouter(prefix="/api", tags=["ward"])


@router.get("/me", response_model=Me)
async def me(user: UserDep) -> Me:
    actions = ("acknowledge", "escalate", "resolve", "manage_users")
    return Me(user=user.name, role=user.role, csrf=user.csrf,
              may=sorted(a for a in actions if may(user.role, a)))


@router.get("/ward", response_model=Ward)
async def ward(user: UserDep, ward_now: WardNowDep) -> Ward:
    return await ward_now()


@router.get("/beds/{bed_id}", response_model=Tile)
async def bed(bed_id: str, user: UserDep, ward_now: WardNowDep) -> Tile:
    """The patient now in a bed (the one whose recording is newest, should a bed have had two)."""
    here = [t for t in (await ward_now()).patients if t.bed_id == bed_id]
    if not here:
        raise HTTPException(404, f"no patient monitored in bed {bed_id}")
    return max(here, key=lambda t: (t.last_packet_at or 0.0, t.t_end or 0.0))


@router.post("/ward/audio-pause", response_model=AudioPause)
async def pause_audio(body: AudioPauseBody, user: ActingUserDep, audio: AudioDep) -> AudioPause:
    """Pause the alarm sounds of every station screen of the ward for a set time; logged with the user's name.
    Who may acknowledge an alarm may pause its sound."""
    user.require("acknowledge")
    return await audio.pause(user.name, body.minutes)


@router.delete("/ward/audio-pause", status_code=204)
async def resume_audio(user: ActingUserDep, audio: AudioDep) -> None:
    await audio.resume(user.name)


@router.get("/ward/audio-log")
async def audio_log(user: UserDep, audio: AudioDep) -> list[dict[str, Any]]:
    """Who paused (or resumed) the alarm sounds and when, newest first."""
    return await audio.log()


@router.get("/events")
async def events(request: Request, user: UserDep, ward_now: WardNowDep, settings: SettingsDep,
                 recheck: SessionRecheckDep) -> StreamingResponse:
    """Server-Sent Events: the ward snapshot whenever it changes, checked every ``dashboard_push_s``
    (for hospital systems; the station's own wall uses ``/api/wall/events``). Closes with ``signed_out``
    once the session has ended (re-read every ``SESSION_RECHECK_S``)."""
    async def stream() -> AsyncIterator[str]:
        last = None
        while not await request.is_disconnected():
            if await recheck.ended():
                yield SIGNED_OUT_EVENT
                return
            snapshot = (await ward_now()).model_dump_json()
            if snapshot != last:
                yield f"event: ward\ndata: {snapshot}\n\n"
                last = snapshot
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(settings.dashboard_push_s)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
