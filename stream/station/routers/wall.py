"""The trace wall's live stream: every bed's new seconds and the ward snapshot, over Server-Sent Events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from stream.station.deps import SESSION_RECHECK_S, SIGNED_OUT_EVENT, FeedDep, SessionRecheckDep, UserDep

router = APIRouter(prefix="/api/wall", tags=["ward"])

#: An ``alive`` event at least this often, even when nothing changed: it keeps proxies from closing a quiet
#: stream, and a screen that hears nothing for 10 s says it is not being updated (stream/station/static/wall.js).
KEEP_ALIVE_S = 3.0


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
                    yield f"event: alive\ndata: {time.time():.0f}\n\n"
                    continue
                if event == "reset":  # too slow to follow: end; the browser reconnects and gets a fresh history
                    return
                yield f"event: {event}\ndata: {data}\n\n"
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
