"""The worker's heartbeat in Redis: that it is alive, and what it can reach.

The worker writes its report every ``worker_alive_s``. The station reads it to name an outage by its
cause on every open screen: no report for ``dashboard_worker_stale_s`` is "the worker is silent"; a
report that says the broker is unreachable is "the broker is unreachable", so the beds do not each
blame their monitor for data that stopped upstream of them; a report of models degraded is a
technical notice (the rules keep alarming). Redis itself unreachable the station finds on its own.
"""

from __future__ import annotations

import json
import time

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

HEARTBEAT = "ctgw:worker:heartbeat"


class WorkerReport(BaseModel):
    """One heartbeat: when it was written, and since when the broker or the models have been away."""

    t: float
    broker_unreachable_since: float | None = None  # None: the worker reached the broker at its last check (3 s)
    models_degraded_since: float | None = None  # None: every served model answered at the last round
    models_detail: str | None = None  # which models did not answer, and why
    unread_records: int | None = None  # the worker group's lag at its last measurement (records not yet read)
    unread_at: float | None = None  # when that lag was measured


#: Written by ``ctgwatch up`` when it started an embedded broker whose previous run died with its log.
BROKER_LOSS = "ctgw:broker:recreated"
#: The worker group's lag as the ward's supervisor measures it (it goes on while the worker is down).
GROUP_LAG = "ctgw:broker:unread"


class GroupLag(BaseModel):
    """Records the worker group had not read, summed over the signal topics' partitions, and when."""

    t: float
    unread_records: int


class BrokerLoss(BaseModel):
    """An embedded broker started again after its log was lost: when, and how many records the workers had
    not read yet by their last measurement (the producers send again those they still keep)."""

    at: float
    unread_records: int | None = None
    unread_at: float | None = None

    def sentence(self) -> str:
        if self.unread_records is None:
            return ("The message broker was started again with an empty log: how many records the workers had "
                    "not read yet is not known. Producers sent again the records they kept.")
        return (f"The message broker was started again with an empty log. About {self.unread_records} records "
                "the workers had not read were in it; producers sent again the records they kept (any they had "
                "let go, counted in their logs, are lost).")


async def beat(redis: Redis, keep_s: float, report: WorkerReport | None = None) -> None:
    """Write the worker's report (``report.t`` is set to now)."""
    report = (report or WorkerReport(t=0.0)).model_copy(update={"t": time.time()})
    await redis.set(HEARTBEAT, report.model_dump_json(exclude_none=True), ex=max(1, int(keep_s)))


async def read(redis: Redis) -> WorkerReport | None:
    """The newest report; None when none is known (no worker, or gone long ago). A report written by an
    older worker (the bare time) reads as a report that says nothing of the broker or the models."""
    raw = await redis.get(HEARTBEAT)
    if raw is None:
        return None
    try:
        return WorkerReport.model_validate_json(raw)
    except ValidationError:
        try:
            return WorkerReport(t=float(json.loads(raw)))
        except (TypeError, ValueError):
            return None


async def read_broker_loss(redis: Redis) -> BrokerLoss | None:
    """The last embedded-broker loss ``up`` recorded (None: none)."""
    raw = await redis.get(BROKER_LOSS)
    try:
        return None if raw is None else BrokerLoss.model_validate_json(raw)
    except ValidationError:
        return None


async def age_s(redis: Redis) -> float | None:
    """Seconds since the newest worker heartbeat; None when none is known (no worker, or gone long ago)."""
    report = await read(redis)
    return None if report is None else max(0.0, time.time() - report.t)
