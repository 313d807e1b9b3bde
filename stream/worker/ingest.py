"""What a worker does with each record it reads: judge it, hand it to the pipeline, dead-letter what fails.

Every record that reaches a worker is judged again by :mod:`stream.core.validation` (any producer can
write to the topics, not only our gateway): a refused record goes to the dead-letter topic with its raw
bytes, reason and source (``kafka:<topic>[<partition>]@<offset>``), and the agent moves on. Nothing an
input contains can stop an agent: an unexpected error while handling one record dead-letters that
record with code ``internal`` and keeps going. An outage is not bad input: while Redis or the broker is
unreachable the record is held and retried (:mod:`stream.worker.outage`), never dead-lettered.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import faust

from stream.core.logs import pseudonym
from stream.core.metrics import DEAD_LETTERS, DUPLICATES, PACKET_LATENCY, RECORDS_IN
from stream.core.schemas import REPLAY_HEADER, CtgPacket, DeadLetter, RejectCode, encode, record_key
from stream.core.validation import IngestError, SignalRecord, Validator, parse_signal
from stream.worker.outage import OutageRetry
from stream.worker.pipeline import Pipeline

log = logging.getLogger("ctgwatch.worker")

RecordHandler = Callable[[SignalRecord], Awaitable[None]]


@dataclass(frozen=True)
class Accepted:
    """A record that passed validation, with what a dead letter of it would need."""

    record: SignalRecord
    raw: bytes
    source: str  # kafka:<topic>[<partition>]@<offset>
    received: float


class Ingest:
    """Judges the records of the signal topics in order and hands the accepted ones to the pipeline.

    ``pipeline`` None: ``handle`` alone takes the accepted records one at a time (tests of the ingest
    path), and there is no redelivery lookup, replay or batching.
    """

    def __init__(self, *, validator: Validator, retry: OutageRetry, deadletter_topic: faust.TopicT,
                 pipeline: Pipeline | None, handle: RecordHandler, log_key: bytes, keep_bytes: int,
                 batch_max: int, batch_within_s: float) -> None:
        self.validator = validator
        self.retry = retry
        self.deadletter_topic = deadletter_topic
        self.pipeline = pipeline
        self.handle = handle
        self.log_key = log_key
        self.keep_bytes = keep_bytes
        self.batch_max = batch_max
        self.batch_within_s = batch_within_s

    async def judge_stream(self, stream: faust.StreamT[Any]) -> None:
        """Judge each record in order; accepted CTG packets are handled a batch at a time.

        The pending packets are handled before anything that needs what they store (a redelivered
        packet is looked up in Redis) or must keep its place (a replayed dead letter, vitals).
        """
        async for events in stream.take_events(self.batch_max, within=self.batch_within_s):  # type: ignore[attr-defined]
            packets: list[Accepted] = []
            for event in events:
                packets = await self._judge(event, packets)
            await self.handle_packets(packets)

    async def _judge(self, event: Any, packets: list[Accepted]) -> list[Accepted]:
        """One record: added to the pending packets (returned), or handled now after them."""
        msg = event.message
        raw = event.value if isinstance(event.value, bytes) else b""
        source = f"kafka:{msg.topic}[{msg.partition}]@{msg.offset}"
        now = time.time()
        if self.pipeline is not None and REPLAY_HEADER in dict(msg.headers or []):  # a dead letter sent again
            await self.handle_packets(packets)
            await self.replayed(raw, now, source)
            return []
        verdict = self.validator.judge(raw, source=source, now=now)
        if isinstance(verdict, DeadLetter):
            if verdict.code != RejectCode.OUT_OF_ORDER:
                await self.dead_letter(verdict)
                return packets
            await self.handle_packets(packets)
            late = self._parsed(raw, now)  # parsed once for both questions
            if await self.redelivered(late, source):
                DUPLICATES.inc()  # at-least-once delivery (a producer resent it): already stored
            elif await self.filled_gap(late, source):
                RECORDS_IN.labels("late", "ctg").inc()  # a resend after an outage: samples that never arrived
            else:
                await self.dead_letter(verdict)
            return []
        RECORDS_IN.labels("kafka", verdict.kind).inc()
        item = Accepted(verdict, raw, source, now)
        if verdict.kind == "ctg":
            return [*packets, item]
        await self.handle_packets(packets)
        await self.handle_one(item)
        return []

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Send a refused record to the dead-letter topic; acknowledged by the broker before the offset
        moves on (an outage is waited out, never a reason to drop it)."""
        async def send() -> None:
            fut = await self.deadletter_topic.send(key=record_key(letter), value=encode(letter))
            await fut

        await self.retry.run(send, source=f"the dead letter of {letter.source}")
        DEAD_LETTERS.labels("kafka", letter.code.value).inc()
        # the reason may name the patient: it stays in the dead letter, the log has the pseudonym
        log.warning("dead letter from %s: %s (patient %s)", letter.source, letter.code.value,
                    pseudonym(letter.patient_id, self.log_key))

    async def replayed(self, raw: bytes, now: float, source: str) -> None:
        """A dead letter sent again: schema and time checks as always; not the order check (it is old on
        purpose)."""
        assert self.pipeline is not None
        try:
            record = parse_signal(raw, self.validator.limits, now=now)
        except IngestError as err:
            await self.dead_letter(err.dead_letter(raw, source=source, received_ts=now, keep_bytes=self.keep_bytes))
            return
        RECORDS_IN.labels("replay", record.kind).inc()
        await self.retry.run(functools.partial(self.pipeline.on_replayed, record), source=source,
                             on_outage=self._drop_half_done({record.patient_id}))

    async def redelivered(self, record: SignalRecord | None, source: str) -> bool:
        """Is this out-of-order record (None: it does not parse) one the worker already stored (a producer's
        resend)?"""
        pipeline = self.pipeline
        if pipeline is None or record is None:
            return False
        return await self._asked(lambda: pipeline.windows.already_stored(record), source)

    async def filled_gap(self, record: SignalRecord | None, source: str) -> bool:
        """Did this out-of-order CTG packet fill samples that never arrived (a hole an outage left)? Then it is
        stored at its place in time (:meth:`stream.worker.pipeline.Pipeline.fill_gap`), not dead-lettered."""
        pipeline = self.pipeline
        if pipeline is None or not isinstance(record, CtgPacket):
            return False
        return await self._asked(lambda: pipeline.fill_gap(record), source, record.patient_id)

    def _parsed(self, raw: bytes, now: float) -> SignalRecord | None:
        """The record, or None when it does not parse (the caller dead-letters it with the validator's reason)."""
        try:
            return parse_signal(raw, self.validator.limits, now=now)
        except IngestError:
            return None

    async def _asked(self, question: Callable[[], Awaitable[bool]], source: str, patient_id: str | None = None) -> bool:
        """The pipeline's answer, waiting out an outage (a window touched is reloaded before the retry)."""
        answer = False

        async def ask() -> None:
            nonlocal answer
            answer = await question()

        await self.retry.run(ask, source=source,
                             on_outage=None if patient_id is None else self._drop_half_done({patient_id}))
        return answer

    def _drop_half_done(self, patient_ids: set[str]) -> Callable[[BaseException], None]:
        """After a failed try, the retry reloads these windows from Redis: nothing half-applied stays."""
        def drop(_exc: BaseException) -> None:
            if self.pipeline is not None:
                for pid in patient_ids:
                    self.pipeline.forget_window(pid)
        return drop

    async def handle_one(self, item: Accepted) -> None:
        try:
            await self.retry.run(functools.partial(self.handle, item.record), source=item.source,
                                 on_outage=self._drop_half_done({item.record.patient_id}))
            if item.record.kind == "ctg":
                PACKET_LATENCY.observe(max(0.0, time.time() - item.record.end_ts))
        except Exception as exc:  # a bug must not stop the ward: keep the record, say why
            log.exception("handling %s failed", item.source)
            await self.dead_letter(_internal_letter(item, exc))

    async def handle_packets(self, batch: list[Accepted]) -> None:
        """Accepted CTG packets in one pass of the pipeline (one Redis round trip for all of them).

        A packet the pipeline could not handle is dead-lettered alone; if the batch as a whole fails
        for a reason other than an outage, its packets go one at a time, so the one at fault is found.
        """
        pipeline = self.pipeline
        if pipeline is None or len(batch) <= 1:
            for item in batch:
                await self.handle_one(item)
            return
        records = [cast(CtgPacket, item.record) for item in batch]  # _judge batches CTG packets only
        drop = self._drop_half_done({record.patient_id for record in records})
        source = f"{len(batch)} packets from {batch[0].source} on"
        failed: list[tuple[int, Exception]] = []

        async def run() -> None:
            nonlocal failed
            failed = await pipeline.on_ctg_batch(records)

        try:
            await self.retry.run(run, source=source, on_outage=drop)
        except Exception as exc:
            log.exception("handling %s failed: one at a time instead", source)
            drop(exc)  # the one-at-a-time handling reloads them from Redis
            for item in batch:
                await self.handle_one(item)
            return
        done = time.time()
        bad = dict(failed)
        for i, (item, record) in enumerate(zip(batch, records)):
            if i in bad:
                log.error("handling %s failed", item.source, exc_info=bad[i])
                await self.dead_letter(_internal_letter(item, bad[i]))
            else:
                PACKET_LATENCY.observe(max(0.0, done - record.end_ts))


def _internal_letter(item: Accepted, exc: BaseException) -> DeadLetter:
    """The dead letter of a valid record the pipeline failed on (a bug, not the input's fault)."""
    return DeadLetter.of(item.raw, code=RejectCode.INTERNAL, reason=f"processing failed: {type(exc).__name__}: {exc}"[:500],
                         source=item.source, received_ts=item.received, patient_id=item.record.patient_id)
