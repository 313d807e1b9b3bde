"""The worker's heartbeat in Redis, so the station can tell a quiet ward from a stopped stream.

The worker writes the time every ``interval`` (its event loop is alive and it reaches Redis); the
station shows a ward-wide technical banner when the newest heartbeat is older than its limit:
alarms are not being raised then, and the beds must be watched at the monitors.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

HEARTBEAT = "ctgw:worker:heartbeat"


async def beat(redis: Redis, keep_s: float) -> None:
    await redis.set(HEARTBEAT, repr(time.time()), ex=max(1, int(keep_s)))


async def age_s(redis: Redis) -> float | None:
    """Seconds since the newest worker heartbeat; None when none is known (no worker, or gone long ago)."""
    raw = await redis.get(HEARTBEAT)
    return None if raw is None else max(0.0, time.time() - float(raw))
