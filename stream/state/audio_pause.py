"""The ward's alarm-sound pause: who paused the audible alarm signals, until when (IEC 60601-1-8 'audio paused').

A pause silences the central station's alarm sounds for a set time and
nothing else: alarms still appear and are listed, and an alarm raised after
the pause began sounds anyway (the pause covers what the person who paused
had seen). Every pause is written to the
ward's log with the user's name, so a silenced station can always be
explained. Keys: ``ctgw:audio:pause:<ward>`` (hash: until, by, at, minutes)
and ``ctgw:audio:log:<ward>`` (stream).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from stream.core.redis_values import text_fields

#: The longest pause a user may set: an audio pause is a short, deliberate silence, not "sound off".
MAX_PAUSE_S = 10 * 60.0


class AudioPause(BaseModel):
    until: float
    by: str
    at: float
    minutes: float


class AudioPauseStore:
    def __init__(self, redis: Redis, ward_id: str) -> None:
        self.redis = redis
        self.key = f"ctgw:audio:pause:{ward_id}"
        self.log_key = f"ctgw:audio:log:{ward_id}"

    async def pause(self, user: str, minutes: float, now: float | None = None) -> AudioPause:
        now = time.time() if now is None else now
        seconds = min(max(minutes * 60.0, 30.0), MAX_PAUSE_S)
        pause = AudioPause(until=now + seconds, by=user, at=now, minutes=round(seconds / 60, 2))
        fields: dict[Any, Any] = {k: str(v) for k, v in pause.model_dump().items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key, mapping=fields)
            pipe.expireat(self.key, int(pause.until) + 1)
            pipe.xadd(self.log_key, {"event": "audio_paused", **fields}, maxlen=10_000, approximate=True)
            await pipe.execute()
        return pause

    async def resume(self, user: str) -> None:
        """End a pause early (any signed-in user: more sound is always allowed)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            pipe.xadd(self.log_key, {"event": "audio_resumed", "by": user, "at": str(time.time())},
                      maxlen=10_000, approximate=True)
            await pipe.execute()

    async def current(self, now: float | None = None) -> AudioPause | None:
        raw = await self.redis.hgetall(self.key)
        if not raw:
            return None
        pause = AudioPause.model_validate(text_fields(raw))
        return pause if pause.until > (time.time() if now is None else now) else None

    async def log(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest pauses and resumptions, newest first."""
        entries = await self.redis.xrevrange(self.log_key, count=count)
        return [text_fields(fields) for _, fields in entries or []]
