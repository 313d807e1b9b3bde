"""The trace wall's live stream: every bed's new seconds and the ward snapshot, over Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from stream.station.deps import SESSION_RECHECK_S, SIGNED_OUT_EVENT, FeedDep, SessionRecheckDep, UserDep

router = APIRouter(prefix="/api/wall", tags=["ward"])

#: A comment line this often keeps proxies from closing a quiet stream.
KEEP_ALIVE_S = 15.0


@router.get("/events")
async def wall_events(request: Request, user: UserDep, feed: FeedDep, recheck: SessionRecheckDep) -> StreamingResponse:
    """``history`` (every bed's last minutes at 1 Hz), then ``samples`` each second (only the new
    seconds of each bed) and ``ward`` whenever the snapshot changed (stream/station/feed.py).

    The session is re-read every ``SESSION_RECHECK_S``: once it has ended (sign-out, a disabled,
    removed or re-passworded user) the stream sends ``signed_out`` and closes; no more patient data.
    """
    queue = feed.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            while not await request.is_disconnected():
                if await recheck.ended():
                    yield SIGNED_OUT_EVENT
                    return
                try:
                    event, data = await asyncio.wait_for(queue.get(), min(KEEP_ALIVE_S, SESSION_RECHECK_S))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event == "reset":  # too slow to follow: end; the browser reconnects and gets a fresh history
                    return
                yield f"event: {event}\ndata: {data}\n\n"
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
