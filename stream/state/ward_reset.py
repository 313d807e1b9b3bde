"""Starting a demo ward afresh: clear the previous run's clinical state, keep the users.

``make demo`` runs a new simulated ward each time; without this, the open
alerts and traces of the last run would come back beside the new patients
(the embedded broker is memory-only, so nothing else of the old run is left).
Users and the user-administration audit are kept, so a nurse can sign in again.
"""

from __future__ import annotations

from redis.asyncio import Redis

#: Key patterns of the clinical state (alerts, episodes, indexes, audit, windows, status, relay cursor,
#: the labour record, the ward's audio pause).
CLINICAL_KEYS = (
    "ctgw:alert:*", "ctgw:episode:*", "ctgw:open:*", "ctgw:escalation", "ctgw:audit", "ctgw:audit:alert:*",
    "ctgw:win:*", "ctgw:vitals:*", "ctgw:patient:*", "ctgw:patients:*", "ctgw:relay:*",
    "ctgw:chart:*", "ctgw:chart-marks:*", "ctgw:trend:*", "ctgw:alerts:patient:*", "ctgw:audio:*", "ctgw:figo:*",
)


async def clear_clinical_state(redis: Redis) -> int:
    """Delete every clinical key; returns how many were deleted (users stay)."""
    deleted = 0
    for pattern in CLINICAL_KEYS:
        batch = [key async for key in redis.scan_iter(match=pattern, count=500)]
        for i in range(0, len(batch), 500):
            deleted += await redis.delete(*batch[i:i + 500])
    return deleted
