"""Publishing the alert audit trail to the ``alerts`` topic (transactional outbox).

Redis is the source of truth for alerts: every change is appended to the
``ctgw:audit`` stream in the same transaction as the change itself. This
relay publishes the stream, in order, to Kafka for other hospital systems and
moves a cursor in Redis only after the broker acknowledged, so an alert
written just before a crash is still published (at least once; each message
carries its ``audit_id`` for consumers to de-duplicate). One relay runs at a
time across workers, holding a Redis lease.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from stream.core.redis_values import as_text, text_fields, text_or_none
from stream.state.alerts import AUDIT, AlertStore
from stream.worker.outage import is_outage, service_of

log = logging.getLogger("ctgwatch.relay")
CURSOR = "ctgw:relay:cursor"
LEASE = "ctgw:relay:lease"


class AlertRelay:
    def __init__(self, redis: Redis, store: AlertStore, producer: AIOKafkaProducer, topic: str,
                 *, lease_s: float = 10.0, batch: int = 200) -> None:
        self.redis = redis
        self.store = store
        self.producer = producer
        self.topic = topic
        self.lease_s = lease_s
        self.batch = batch
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"

    async def _hold_lease(self) -> bool:
        ms = int(self.lease_s * 1000)
        if await self.redis.set(LEASE, self.me, nx=True, px=ms):
            return True
        holder = await self.redis.get(LEASE)
        if text_or_none(holder) == self.me:
            await self.redis.pexpire(LEASE, ms)
            return True
        return False

    async def relay_once(self) -> int:
        """Publish what the cursor has not covered yet; returns how many were published."""
        if not await self._hold_lease():
            return 0
        cursor = text_or_none(await self.redis.get(CURSOR)) or "0-0"
        entries = await self.redis.xrange(AUDIT, min=f"({cursor}", count=self.batch)
        if not entries:
            return 0
        futures = []
        for entry_id, fields in entries:
            event = text_fields(fields)
            alert = await self.store.get(event["alert_id"])
            message = {
                "audit_id": as_text(entry_id), "event": event["event"], "actor": event["actor"],
                "at": float(event["at"]), "detail": json.loads(event["detail"]),
                "alert": None if alert is None else alert.model_dump(exclude_none=True),
            }
            key = (event["alert_id"] if alert is None else alert.patient_id).encode()
            futures.append(await self.producer.send(self.topic, json.dumps(message).encode(), key=key))
        await asyncio.gather(*futures)
        await self.redis.set(CURSOR, as_text(entries[-1][0]))
        return len(entries)

    async def run(self, interval_s: float = 0.5) -> None:
        away: str | None = None  # the outage being waited out: logged once when it starts and when it ends
        while True:
            try:
                while await self.relay_once():
                    pass
                if away is not None:
                    log.warning("alert relay resumed (%s is back)", away)
                    away = None
            except Exception as exc:  # broker or Redis away: try again next round, the cursor did not move
                # any Kafka error here is the broker's (a new broker without its topics yet answers
                # UnknownError): it is waited out like an outage, one line, not a traceback a round
                if not (is_outage(exc) or isinstance(exc, KafkaError)):
                    log.exception("alert relay round failed")
                elif away is None:
                    away = service_of(exc)
                    log.warning("alert relay waiting: %s is unavailable (%s: %s)", away, type(exc).__name__, exc)
            await asyncio.sleep(interval_s)
