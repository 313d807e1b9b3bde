"""The FIGO state of each labour (``ctgw:figo:<patient>``): one member per measured minute.

:class:`detectors.labour.LabourFigo` measures each minute of a labour once and decides the class
from the durations it carries. Its minute records are stored here as they are made, scored by the
minute's start, so that a restarted worker, or the worker a partition moved to, reads the labour
back instead of forgetting it (or re-measuring hours it no longer has at 4 Hz). About 150 bytes a
minute: the 4 h carried by default are under 40 kB per patient.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from detectors.labour import MinuteRecord
from stream.core.redis_values import as_bytes


class LabourFigoStore:
    """Writes (worker, each minute) and reads (worker, on first sight of a patient) the minute records."""

    def __init__(self, redis: Redis, *, keep_s: float) -> None:
        self.redis = redis
        self.keep_s = keep_s

    @staticmethod
    def key(patient_id: str) -> str:
        return f"ctgw:figo:{patient_id}"

    async def add(self, patient_id: str, records: list[MinuteRecord]) -> None:
        """Store new minutes (a minute measured again replaces its earlier record) and trim to ``keep_s``."""
        if not records:
            return
        key = self.key(patient_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            for rec in records:
                pipe.zremrangebyscore(key, rec.t, rec.t)
            pipe.zadd(key, {json.dumps(rec.to_dict(), separators=(",", ":")): rec.t for rec in records})
            pipe.zremrangebyscore(key, "-inf", f"({records[-1].end - self.keep_s}")
            await pipe.execute()

    async def load(self, patient_id: str) -> list[MinuteRecord]:
        """The stored minutes, oldest first."""
        return [MinuteRecord.from_dict(json.loads(as_bytes(raw))) for raw in await self.redis.zrange(self.key(patient_id), 0, -1)]
