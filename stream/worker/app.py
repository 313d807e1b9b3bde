"""The Faust app (``ctgwatch worker``): agents on the signal topics, keyed by patient.

Every record that reaches a worker is judged again by :mod:`stream.core.validation`
(any producer can write to the topics, not only our gateway): a refused record
goes to the dead-letter topic with its raw bytes, reason and source
(``kafka:<topic>[<partition>]@<offset>``), and the agent moves on. Nothing an
input contains can stop an agent: an unexpected error while handling one
record dead-letters that record with code ``internal`` and keeps going.
An outage is not bad input: while Redis or the broker is unreachable the
record is held and retried (:mod:`stream.worker.outage`), never dead-lettered.

Accepted records go to the clinical pipeline (:mod:`stream.worker.pipeline`):
windows, fast rules, the FIGO analysis and model scoring on a cadence
(a timer), alerts in Redis; an escalation timer and the alert relay (Redis
audit stream -> ``alerts`` topic) run beside the agents. ``on_record`` can
replace the pipeline (tests of the ingest path alone).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import faust

from stream.core.kafka import faust_credentials
from stream.core.logs import pseudonym, pseudonym_key
from stream.core.metrics import CONSUMER_LAG, DEAD_LETTERS, DUPLICATES, PACKET_LATENCY, RECORDS_IN, TRITON_BATCH, TRITON_SECONDS
from stream.core.schemas import REPLAY_HEADER, CtgPacket, DeadLetter, RejectCode, encode, record_key
from stream.core.settings import Settings
from stream.core.validation import IngestError, SignalRecord, Validator, parse_signal
from stream.worker.broker_watch import BrokerWatch, restart_worker
from stream.worker.kafka_transport import use_fetch_wait
from stream.worker.outage import OutageRetry, log_failure

log = logging.getLogger("ctgwatch.worker")

RecordHandler = Callable[[SignalRecord], Awaitable[None]]


@dataclass(frozen=True)
class Accepted:
    """A record that passed validation, with what a dead letter of it would need."""

    record: SignalRecord
    raw: bytes
    source: str  # kafka:<topic>[<partition>]@<offset>
    received: float


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def create_app(settings: Settings, on_record: RecordHandler | None = None) -> faust.App:
    """The worker app; topics come from infra/topics.yaml by role."""
    names = settings.topic_names()
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
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
        # Faust makes a data directory even with in-memory tables: under the state directory, not the
        # current directory (the repository root filled with empty <app-id>-data directories)
        datadir=str(settings.state_dir / "faust" / "{conf.name}-data"),
        broker_credentials=faust_credentials(settings),
    )
    use_fetch_wait(app, settings.worker_fetch_max_wait_ms)
    validator = Validator(settings.ingest_limits())
    deadletter_topic = app.topic(names.deadletter, key_type=bytes, value_type=bytes)

    log_key = pseudonym_key(settings.state_dir)
    retry = OutageRetry(first_s=settings.outage_retry_first_s, max_s=settings.outage_retry_max_s)
    pipeline: Any = None  # the clinical pipeline (None when ``on_record`` replaces it)
    if on_record is None:
        on_record = _attach_pipeline(app, settings, log_key)
        pipeline = app.pipeline
    handle: RecordHandler = on_record

    async def dead_letter(letter: DeadLetter) -> None:
        async def send() -> None:
            fut = await deadletter_topic.send(key=record_key(letter), value=encode(letter))
            await fut  # acknowledged by the broker before the offset moves on

        await retry.run(send, source=f"the dead letter of {letter.source}")
        DEAD_LETTERS.labels("kafka", letter.code.value).inc()
        # the reason may name the patient: it stays in the dead letter, the log has the pseudonym
        log.warning("dead letter from %s: %s (patient %s)", letter.source, letter.code.value,
                    pseudonym(letter.patient_id, log_key))

    async def replayed(raw: bytes, now: float, source: str) -> None:
        """Schema and time checks as always; not the order check: it is old on purpose."""
        try:
            record = parse_signal(raw, validator.limits, now=now)
        except IngestError as err:
            await dead_letter(err.dead_letter(raw, source=source, received_ts=now,
                                              keep_bytes=settings.ingest_max_message_bytes))
            return
        RECORDS_IN.labels("replay", record.kind).inc()
        await retry.run(functools.partial(pipeline.on_replayed, record), source=source,
                        on_outage=drop_half_done(record.patient_id))

    async def redelivered(raw: bytes, now: float, source: str) -> bool:
        """Is this out-of-order record one the worker already stored (a producer's resend)?"""
        if pipeline is None:
            return False
        try:
            record = parse_signal(raw, validator.limits, now=now)
        except IngestError:
            return False
        found = False

        async def look() -> None:
            nonlocal found
            found = await pipeline.windows.already_stored(record)

        await retry.run(look, source=source)
        return found

    def drop_half_done(patient_id: str) -> Callable[[BaseException], None]:
        def drop(_exc: BaseException) -> None:
            if pipeline is not None:  # the retry reloads the window from Redis: nothing half-applied stays
                pipeline.forget_window(patient_id)
        return drop

    def internal_letter(raw: bytes, exc: BaseException, source: str, received: float, patient_id: str) -> DeadLetter:
        return DeadLetter.of(raw, code=RejectCode.INTERNAL, reason=f"processing failed: {type(exc).__name__}: {exc}"[:500],
                             source=source, received_ts=received, patient_id=patient_id)

    async def handle_one(item: Accepted) -> None:
        try:
            await retry.run(functools.partial(handle, item.record), source=item.source,
                            on_outage=drop_half_done(item.record.patient_id))
            if item.record.kind == "ctg":
                PACKET_LATENCY.observe(max(0.0, time.time() - item.record.end_ts))
        except Exception as exc:  # a bug must not stop the ward: keep the record, say why
            log.exception("handling %s failed", item.source)
            await dead_letter(internal_letter(item.raw, exc, item.source, item.received, item.record.patient_id))

    async def handle_packets(batch: list[Accepted]) -> None:
        """Accepted CTG packets in one pass of the pipeline (one Redis round trip for all of them).

        A packet the pipeline could not handle is dead-lettered alone; if the batch as a whole fails
        for a reason other than an outage, its packets go one at a time, so the one at fault is found.
        """
        if not batch:
            return
        if pipeline is None or len(batch) == 1:
            for item in batch:
                await handle_one(item)
            return
        records = [cast(CtgPacket, item.record) for item in batch]  # judge_stream batches CTG packets only
        pids = {record.patient_id for record in records}

        def forget_batch() -> None:  # the retry, or the one-at-a-time handling, reloads them from Redis
            for pid in pids:
                pipeline.forget_window(pid)

        source = f"{len(batch)} packets from {batch[0].source} on"
        try:
            failed: list[tuple[int, Exception]] = []

            async def run() -> None:
                nonlocal failed
                failed = await pipeline.on_ctg_batch(records)

            await retry.run(run, source=source, on_outage=lambda _exc: forget_batch())
        except Exception:
            log.exception("handling %s failed: one at a time instead", source)
            forget_batch()
            for item in batch:
                await handle_one(item)
            return
        done = time.time()
        bad = dict(failed)
        for i, (item, record) in enumerate(zip(batch, records)):
            if i in bad:
                log.error("handling %s failed", item.source, exc_info=bad[i])
                await dead_letter(internal_letter(item.raw, bad[i], item.source, item.received, record.patient_id))
            else:
                PACKET_LATENCY.observe(max(0.0, done - record.end_ts))

    async def judge_stream(stream: faust.StreamT) -> None:
        """Judge each record in order; accepted CTG packets are handled a batch at a time.

        The pending packets are handled before anything that needs what they store (a redelivered
        packet is looked up in Redis) or must keep its place (a replayed dead letter, vitals).
        """
        async for events in stream.take_events(settings.worker_batch_max, within=settings.worker_batch_within_s):
            packets: list[Accepted] = []
            for event in events:
                msg = event.message
                raw = event.value if isinstance(event.value, bytes) else b""
                source = f"kafka:{msg.topic}[{msg.partition}]@{msg.offset}"
                now = time.time()
                if pipeline is not None and REPLAY_HEADER in dict(msg.headers or []):  # a dead letter sent again on purpose
                    await handle_packets(packets)
                    packets = []
                    await replayed(raw, now, source)
                    continue
                verdict = validator.judge(raw, source=source, now=now)
                if isinstance(verdict, DeadLetter):
                    if verdict.code == RejectCode.OUT_OF_ORDER:
                        await handle_packets(packets)
                        packets = []
                        if await redelivered(raw, now, source):
                            DUPLICATES.inc()  # at-least-once delivery (a producer resent it): already stored
                            continue
                    await dead_letter(verdict)
                    continue
                RECORDS_IN.labels("kafka", verdict.kind).inc()
                item = Accepted(verdict, raw, source, now)
                if verdict.kind == "ctg":
                    packets.append(item)
                else:
                    await handle_packets(packets)
                    packets = []
                    await handle_one(item)
            await handle_packets(packets)

    watch = BrokerWatch(settings)

    @app.timer(interval=settings.broker_watch_s, name="broker-watch")
    async def broker_watch() -> None:
        try:
            new_id = await watch.recreated()
        except Exception:  # the broker is away: the consumer waits for it, nothing to decide yet
            return
        if new_id is not None:
            restart_worker(f"the broker was recreated (cluster id {watch.known} -> {new_id}); "
                           "an embedded broker's log starts again empty")

    app.agent(app.topic(names.ctg, key_type=bytes, value_type=bytes), name="ingest-ctg")(judge_stream)
    app.agent(app.topic(names.vitals, key_type=bytes, value_type=bytes), name="ingest-vitals")(judge_stream)
    return app


def _attach_pipeline(app: faust.App, settings: Settings, log_key: bytes) -> RecordHandler:
    """Build the clinical pipeline with its Redis, Triton and relay, and its timers."""
    from redis.asyncio import Redis

    from models.triton_client import ANOMALY_MODEL, FALSE_SIGNAL, RISK_MODEL, AnomalyClient, BatchingScorer
    from stream.core.kafka import start_producer
    from stream.state.alerts import AlertStore
    from stream.state.windows import WindowStore
    from stream.worker.false_signal import FalseSignalJudge
    from stream.worker.pipeline import Cadence, Pipeline
    from stream.worker.relay import AlertRelay

    redis = Redis.from_url(settings.redis_dsn)
    store = AlertStore(redis, settings.alert_handling())
    scorer = None
    false_signal = None
    risk_scorer = None
    if settings.models_enabled:
        def observe(model: str, seconds: float, batch: int) -> None:
            TRITON_SECONDS.labels(model).observe(seconds)
            TRITON_BATCH.observe(batch)

        client = AnomalyClient(settings.triton_grpc, timeout_s=settings.model_timeout_s, on_latency=observe)
        scorer = BatchingScorer(client, models=(ANOMALY_MODEL,))
        risk_scorer = BatchingScorer(client, models=(RISK_MODEL,))
        false_signal = FalseSignalJudge(BatchingScorer(client, models=(FALSE_SIGNAL,)),
                                        interval_s=settings.model_interval_s)
    cadence = Cadence(
        analysis_interval_s=settings.analysis_interval_s, analysis_window_s=settings.analysis_window_s,
        labour_history_s=settings.labour_history_s,
        model_interval_s=settings.model_interval_s, model_alert_consecutive=settings.model_alert_consecutive,
    )
    analysis_pool = None
    if settings.analysis_processes:
        from stream.worker.analysis_pool import AnalysisPool

        analysis_pool = AnalysisPool(settings.analysis_processes)
    compromise = None
    if settings.models_enabled and settings.compromise_model is not None and settings.compromise_model.is_file():
        from models.compromise import Stacker

        compromise = Stacker.load(settings.compromise_model)
    pipeline = Pipeline(redis, store, WindowStore(redis, capacity_s=settings.history_s), cadence, scorer,
                        policy=settings.alarm_rules(), log_key=log_key, false_signal=false_signal,
                        risk_scorer=risk_scorer, analysis_pool=analysis_pool, compromise=compromise)

    @app.timer(interval=settings.scheduler_tick_s, name="analysis-cadence")
    async def analysis_cadence() -> None:
        try:
            await pipeline.tick()
        except Exception as exc:  # one bad tick must not stop the next (in an outage the records wait)
            log_failure(log, "analysis tick", exc)

    @app.timer(interval=settings.escalation_check_s, name="escalations")
    async def escalations() -> None:
        try:
            for aid in await store.run_escalations():
                log.warning("alert %s escalated: not acknowledged in time", aid)
        except Exception as exc:
            log_failure(log, "escalation round", exc)

    @app.timer(interval=settings.worker_alive_s, name="heartbeat")
    async def heartbeat() -> None:
        from stream.state.heartbeat import beat

        try:
            await beat(redis, keep_s=24 * 3600)
        except Exception as exc:  # Redis away: the station says so by the heartbeat's age
            log.warning("heartbeat not written: %s", exc)

    @app.timer(interval=settings.lag_probe_s, name="consumer-lag")
    async def consumer_lag() -> None:
        from stream.core.kafka import partition_lag

        try:
            for (topic, partition), (lag, _known) in (await partition_lag(settings)).items():
                CONSUMER_LAG.labels(topic, str(partition)).set(lag)
        except Exception as exc:  # the metric is best effort; processing goes on
            log.warning("consumer lag not measured: %s", exc)

    @app.task
    async def alert_relay() -> None:
        producer = await start_producer(settings)
        try:
            await AlertRelay(redis, store, producer, settings.topic_names().alerts,
                             lease_s=settings.relay_lease_s).run(settings.relay_interval_s)
        finally:
            await producer.stop()

    @app.on_partitions_revoked.connect
    async def forget_windows(sender, revoked, **_kwargs) -> None:  # noqa: ANN001
        pipeline.forget_all()

    app.pipeline = pipeline  # for tests and introspection
    return pipeline.on_record


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (Faust handles the signals)."""
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        from stream.core.errors import SetupError

        try:
            start_http_server(settings.worker_metrics_port, addr=settings.host)
        except OSError as exc:
            raise SetupError(
                f"worker metrics port {settings.worker_metrics_port} on {settings.host} is not free ({exc.strerror})",
                "set CTGWATCH_WORKER_METRICS_PORT to a free port (each worker on a host needs its own) or 0",
            ) from exc
    import asyncio

    from stream.core.logs import logging_config
    from stream.worker.broker_watch import reset_stale_offsets

    try:
        for line in asyncio.run(reset_stale_offsets(settings)):
            log.warning("consumer offsets from a previous broker: %s", line)
    except Exception as exc:  # broker away at start: the consumer will wait for it
        log.warning("committed offsets not checked (%s: %s)", type(exc).__name__, exc)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True,
                          logging_config=logging_config(settings.log_format, loglevel))
    worker.execute_from_commandline()
