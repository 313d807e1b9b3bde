"""Publishing from the gateway with back-pressure.

The gateway must never buffer without bound when the broker is slow: it
counts records awaiting the broker's acknowledgement and refuses new ones
(HTTP 429 / HL7 AR) beyond ``max_inflight`` or when a publish is not
acknowledged within ``timeout_s``. The device keeps the data and retries, so
nothing is lost; a retried packet that did reach the broker is refused
downstream as a duplicate (out of order), so nothing is doubled either.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.core.metrics import PUBLISH_SECONDS
from stream.core.schemas import CtgPacket, DeadLetter, VitalsObservation, encode, record_key
from stream.core.topics import TopicNames


class BrokerBusy(Exception):
    """The broker is not keeping up: ask the sender to retry later."""


class IngestPublisher:
    def __init__(self, producer: AIOKafkaProducer, topics: TopicNames, *, max_inflight: int, timeout_s: float) -> None:
        self.producer = producer
        self.topics = topics
        self.max_inflight = max_inflight
        self.timeout_s = timeout_s
        self.inflight = 0

    def _topic(self, record: CtgPacket | VitalsObservation | DeadLetter) -> str:
        if isinstance(record, CtgPacket):
            return self.topics.ctg
        if isinstance(record, VitalsObservation):
            return self.topics.vitals
        return self.topics.deadletter

    async def publish(self, records: list[CtgPacket | VitalsObservation | DeadLetter]) -> None:
        """Publish all and wait for the broker; :class:`BrokerBusy` if it does not keep up."""
        if not records:
            return
        if self.inflight + len(records) > self.max_inflight:
            raise BrokerBusy(f"{self.inflight} records already await the broker (limit {self.max_inflight})")
        self.inflight += len(records)
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = [
                    await self.producer.send(self._topic(r), encode(r), key=record_key(r)) for r in records
                ]
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError) as exc:
            raise BrokerBusy(f"broker did not acknowledge within {self.timeout_s:g} s ({type(exc).__name__})") from exc
        finally:
            self.inflight -= len(records)
        PUBLISH_SECONDS.observe(time.monotonic() - start)
