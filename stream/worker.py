"""The Faust app (``ctgwatch worker``): agents on the signal topics, keyed by patient.

Every record that reaches a worker is judged again by :mod:`stream.validation`
(any producer can write to the topics, not only our gateway): a refused record
goes to the dead-letter topic with its raw bytes, reason and source
(``kafka:<topic>[<partition>]@<offset>``), and the agent moves on. Nothing an
input contains can stop an agent: an unexpected error while handling one
record dead-letters that record with code ``internal`` and keeps going.

Accepted records are handed to ``on_record`` (the clinical pipeline plugs in
there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import faust

from stream.config import Settings
from stream.metrics import DEAD_LETTERS, RECORDS_IN
from stream.schemas import DeadLetter, RejectCode, encode, record_key
from stream.validation import SignalRecord, Validator

log = logging.getLogger("ctgwatch.worker")

RecordHandler = Callable[[SignalRecord], Awaitable[None]]


async def _ignore(_record: SignalRecord) -> None:
    return None


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def create_app(settings: Settings, on_record: RecordHandler = _ignore) -> faust.App:
    """The worker app; topics come from infra/topics.yaml by role."""
    names = settings.topic_names()
    app = faust.App(
        settings.worker_app_id,
        broker=broker_urls(settings.bootstrap_servers),
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=False,
        # No leader topic: the embedded broker cannot be asked for extra
        # topics lazily and we do not use leader election.
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=settings.worker_heartbeat_s,
        store="memory://",
    )
    validator = Validator(settings.ingest_limits())
    deadletter_topic = app.topic(names.deadletter, key_type=bytes, value_type=bytes)

    async def dead_letter(letter: DeadLetter) -> None:
        fut = await deadletter_topic.send(key=record_key(letter), value=encode(letter))
        await fut  # acknowledged by the broker before the offset moves on
        DEAD_LETTERS.labels("kafka", letter.code.value).inc()
        log.warning("dead letter from %s: %s: %s", letter.source, letter.code.value, letter.reason)

    async def judge_stream(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else b""
            source = f"kafka:{msg.topic}[{msg.partition}]@{msg.offset}"
            now = time.time()
            verdict = validator.judge(raw, source=source, now=now)
            if isinstance(verdict, DeadLetter):
                await dead_letter(verdict)
                continue
            RECORDS_IN.labels("kafka", verdict.kind).inc()
            try:
                await on_record(verdict)
            except Exception as exc:  # a bug must not stop the ward: keep the record, say why
                log.exception("handling %s failed", source)
                await dead_letter(
                    DeadLetter.of(
                        raw, code=RejectCode.INTERNAL, reason=f"processing failed: {type(exc).__name__}: {exc}"[:500],
                        source=source, received_ts=now, patient_id=verdict.patient_id,
                    )
                )

    app.agent(app.topic(names.ctg, key_type=bytes, value_type=bytes), name="ingest-ctg")(judge_stream)
    app.agent(app.topic(names.vitals, key_type=bytes, value_type=bytes), name="ingest-vitals")(judge_stream)
    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (Faust handles the signals)."""
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.host)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
