"""What ``ctgwatch up`` says, and leaves for the wall, when it starts an embedded broker whose log died.

The embedded broker keeps its log in memory: a broker that died took with it every record the workers had
not read yet. How many that was, ``up`` reads from the worker's last heartbeat (the group's lag at its last
measurement); it prints the count and writes it to Redis (``ctgw:broker:recreated``), and every open wall
shows it for a while. The producers send again the records they kept (stream/core/outbox.py): what is lost
is only what they had let go, which each counts in its own log.
"""

from __future__ import annotations

import time

from redis import Redis
from redis.exceptions import RedisError

from stream.core.settings import Settings
from stream.state.heartbeat import BROKER_LOSS, GROUP_LAG, HEARTBEAT, BrokerLoss, GroupLag, WorkerReport

#: How long the wall shows the loss (a technical information signal: no response needed).
SHOWN_S = 15 * 60.0


def _newest_lag(redis: Redis) -> tuple[int | None, float | None]:
    """(records, when) of the newest measurement of the group's lag: the supervisor's (it goes on while the
    worker is down) or the worker's own, whichever is newer."""
    found: list[tuple[float, int]] = []
    raw = redis.get(GROUP_LAG)
    if raw:
        lag = GroupLag.model_validate_json(raw)
        found.append((lag.t, lag.unread_records))
    raw = redis.get(HEARTBEAT)
    report = WorkerReport.model_validate_json(raw) if raw else None
    if report is not None and report.unread_at is not None and report.unread_records is not None:
        found.append((report.unread_at, report.unread_records))
    if not found:
        return None, None
    t, records = max(found)
    return records, t


def record_group_lag(settings: Settings) -> None:
    """Measure the worker group's lag and keep it in Redis (the supervisor, every ``LAG_EVERY_S``)."""
    import asyncio

    from stream.core.kafka import partition_lag

    lags = asyncio.run(partition_lag(settings))
    redis = Redis.from_url(settings.redis_dsn, socket_timeout=3, socket_connect_timeout=3)
    try:
        redis.set(GROUP_LAG, GroupLag(t=time.time(), unread_records=sum(lag for lag, _ in lags.values()))
                  .model_dump_json(), ex=3600)
    finally:
        redis.close()


#: How often the supervisor measures the group's lag: what a lost broker log held is known to this.
LAG_EVERY_S = 10.0


def record_broker_loss(settings: Settings, now: float | None = None) -> str:
    """The line ``up`` prints; the loss is written to Redis for the wall when Redis answers."""
    now = time.time() if now is None else now
    try:
        redis = Redis.from_url(settings.redis_dsn, socket_timeout=3, socket_connect_timeout=3)
        try:
            records, measured_at = _newest_lag(redis)
            loss = BrokerLoss(at=now, unread_records=records, unread_at=measured_at)
            redis.set(BROKER_LOSS, loss.model_dump_json(exclude_none=True), ex=int(SHOWN_S))
        finally:
            redis.close()
    except (RedisError, ValueError) as exc:
        return f"how many records the workers had not read is unknown ({type(exc).__name__}: Redis not read)"
    if loss.unread_records is None:
        return "how many records the workers had not read is unknown (no lag measured by a worker)"
    when = time.strftime("%H:%M:%S", time.localtime(loss.unread_at)) if loss.unread_at else "?"
    return (f"about {loss.unread_records} records the workers had not read were in its log (their lag at {when}); "
            "producers send again the records they kept")
