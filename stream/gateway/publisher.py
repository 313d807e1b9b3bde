"""Publishing from the gateway through a bounded outbox.

A device's records are accepted once they are in the gateway's outbox
(:mod:`stream.core.outbox`), which delivers them in order and carries a
broker outage by holding them and resending. What the outbox cannot keep is
refused: the sender is told to retry later (HTTP 503 with ``Retry-After`` /
HL7 ``AR``), nothing is remembered of it, and the device keeps the data. A
record resent after a lost acknowledgement reaches the worker twice; its
windows are idempotent, so it adds nothing the second time.
"""

from __future__ import annotations

from stream.core.outbox import Outbox, OutboxFull
from stream.core.schemas import CtgPacket, DeadLetter, VitalsObservation, encode, record_key
from stream.core.topics import TopicNames


class BrokerBusy(Exception):
    """The gateway cannot keep more until the broker takes what it holds: ask the sender to retry later."""


class IngestPublisher:
    def __init__(self, outbox: Outbox, topics: TopicNames) -> None:
        self.outbox = outbox
        self.topics = topics

    def _topic(self, record: CtgPacket | VitalsObservation | DeadLetter) -> str:
        if isinstance(record, CtgPacket):
            return self.topics.ctg
        if isinstance(record, VitalsObservation):
            return self.topics.vitals
        return self.topics.deadletter

    async def publish(self, records: list[CtgPacket | VitalsObservation | DeadLetter]) -> None:
        """Queue all records for the broker, or none: :class:`BrokerBusy` when the outbox is full."""
        if not records:
            return
        try:
            self.outbox.offer_many([(self._topic(r), record_key(r), encode(r)) for r in records])
        except OutboxFull as exc:
            raise BrokerBusy(str(exc)) from exc
