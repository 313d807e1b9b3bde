"""Reading the dead-letter topic and sending chosen dead letters through the pipeline again.

A dead letter keeps the input it refused (``raw``), so after a fix (or for a
record an older version dead-lettered for an outage, code ``internal``) the
operator can send it again: ``ctgwatch deadletter replay --code internal``.
Replayed records carry the :data:`~stream.core.schemas.REPLAY_HEADER`, which
tells the worker to store them where they belong in time rather than refuse
them as out of order; the schema and time checks apply as always, so a record
still wrong is dead-lettered again with the reason. Windows are idempotent, so
replaying the same letter twice adds nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.core.kafka import client_security
from stream.core.outbox import Outbox
from stream.core.schemas import REPLAY_HEADER, DeadLetter, RejectCode, decode_deadletter
from stream.core.settings import Settings


@dataclass
class ReplayPlan:
    """What a replay would send (topic, key, value, dead-letter position) and what it leaves, by reason."""

    send: list[tuple[str, bytes, bytes, str]] = field(default_factory=list)
    left: Counter[str] = field(default_factory=Counter)


async def read_dead_letters(settings: Settings) -> list[tuple[str, DeadLetter]]:
    """Every dead letter on the topic now, with its position (``deadletter[p]@offset``)."""
    topic = settings.topic_names().deadletter
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest", **client_security(settings))
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a consumer that could not start still holds its client: close it
        raise
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        letters: list[tuple[str, DeadLetter]] = []

        async def behind() -> bool:
            for tp in tps:
                if await consumer.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                for m in messages:
                    if m.offset < ends[tp]:
                        letters.append((f"{topic}[{tp.partition}]@{m.offset}", decode_deadletter(m.value)))
        return letters
    finally:
        await consumer.stop()


def plan_replay(letters: list[tuple[str, DeadLetter]], codes: set[RejectCode], settings: Settings) -> ReplayPlan:
    """Choose the letters of ``codes`` whose input is a whole signal record, and where each goes."""
    names = settings.topic_names()
    topics = {"ctg": names.ctg, "vitals": names.vitals}
    plan = ReplayPlan()
    for position, letter in letters:
        if letter.code not in codes:
            continue
        if letter.raw_truncated:
            plan.left["truncated: the whole input was not kept"] += 1
            continue
        try:
            body = json.loads(letter.raw)
        except ValueError:
            plan.left["not JSON (HL7 or other bytes): resend from the device"] += 1
            continue
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind not in topics:
            plan.left["not a single CTG or vitals record"] += 1
            continue
        key = str(body.get("patient_id", "unknown")).encode()
        plan.send.append((topics[kind], key, letter.raw, position))
    return plan


async def replay(outbox: Outbox, plan: ReplayPlan) -> int:
    """Publish the plan's records with the replay header; returns how many were sent."""
    for topic, key, value, position in plan.send:
        await outbox.put(topic, key, value, headers=[(REPLAY_HEADER, position.encode())])
    await outbox.flush()
    return len(plan.send)
