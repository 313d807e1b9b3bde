"""The Faust app (``ctgwatch worker``): agents on the signal topics, keyed by patient.

Read top down:

- :class:`Worker` builds the app (:func:`faust_app`), the clinical pipeline (:func:`build_pipeline`) and the
  ingest (:mod:`stream.worker.ingest`: validation, batching, dead letters), then registers the agents,
  the analysis ticks (every second, start to start: :func:`tick_every`), the timers (escalations, the
  heartbeat, the consumer-lag probe, the broker watch) and the alert relay (Redis audit stream -> ``alerts``
  topic);
- :func:`run_worker` tunes the garbage collector (:mod:`stream.worker.gc_tuning`) once the app is built;
- accepted records go to the pipeline (:mod:`stream.worker.pipeline`): windows, fast rules, the FIGO
  analysis and model scoring on a cadence, alerts in Redis.

``on_record`` can replace the pipeline (tests of the ingest path alone).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from mode.types.signals import BaseSignalT
from redis.asyncio import Redis

from stream.core.kafka import faust_credentials
from stream.core.logs import pseudonym_key
from stream.core.metrics import CONSUMER_LAG, TRITON_BATCH, TRITON_SECONDS
from stream.core.settings import Settings
from stream.core.validation import Validator
from stream.state.alerts import AlertStore
from stream.state.heartbeat import WorkerReport, beat
from stream.worker.broker_watch import BrokerWatch, restart_worker
from stream.worker.ingest import Ingest, RecordHandler
from stream.worker.kafka_transport import use_fetch_wait
from stream.worker.outage import OutageRetry, log_failure
from stream.worker.pipeline import Pipeline

log = logging.getLogger("ctgwatch.worker")


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def faust_app(settings: Settings) -> faust.App:
    """The Faust app with its consumer settings (the topics come from infra/topics.yaml by role)."""
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
    use_fetch_wait(app, settings.worker_fetch_max_wait_ms, settings.worker_fetch_min_cycle_ms)
    return app


def build_pipeline(settings: Settings, redis: Redis, store: AlertStore, log_key: bytes) -> Pipeline:
    """The clinical pipeline with its model clients (none when the models are off) and helper processes."""
    from models.serving.triton_client import ANOMALY_MODEL, FALSE_SIGNAL, RISK_MODEL, AnomalyClient, BatchingScorer
    from stream.state.windows import WindowStore
    from stream.worker.false_signal import FalseSignalJudge
    from stream.worker.pipeline import Cadence

    scorer = risk_scorer = false_signal = None
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
        from models.serving.compromise import Stacker

        compromise = Stacker.load(settings.compromise_model)
    return Pipeline(redis, store, WindowStore(redis, capacity_s=settings.history_s), cadence, scorer,
                    policy=settings.alarm_rules(), log_key=log_key, false_signal=false_signal,
                    risk_scorer=risk_scorer, analysis_pool=analysis_pool, compromise=compromise)


class Worker:
    """One worker: the Faust app, its clinical pipeline (None when ``on_record`` replaces it) and its ingest."""

    def __init__(self, settings: Settings, on_record: RecordHandler | None = None) -> None:
        self.settings = settings
        self.app = faust_app(settings)
        log_key = pseudonym_key(settings.state_dir)
        self.redis: Redis | None = None
        self.store: AlertStore | None = None
        self.pipeline: Pipeline | None = None
        if on_record is None:
            self.redis = Redis.from_url(settings.redis_dsn)
            self.store = AlertStore(self.redis, settings.alert_handling())
            self.pipeline = build_pipeline(settings, self.redis, self.store, log_key)
            on_record = self.pipeline.on_record
        names = settings.topic_names()
        self.ingest = Ingest(
            validator=Validator(settings.ingest_limits()),
            retry=OutageRetry(first_s=settings.outage_retry_first_s, max_s=settings.outage_retry_max_s),
            deadletter_topic=self.app.topic(names.deadletter, key_type=bytes, value_type=bytes),
            pipeline=self.pipeline, handle=on_record, log_key=log_key,
            keep_bytes=settings.ingest_max_message_bytes,
            batch_max=settings.worker_batch_max, batch_within_s=settings.worker_batch_within_s)
        for topic, name in ((names.ctg, "ingest-ctg"), (names.vitals, "ingest-vitals")):
            self.app.agent(self.app.topic(topic, key_type=bytes, value_type=bytes), name=name)(self.ingest.judge_stream)
        # a stalled broker answers nothing: give up on a check after 3 s, so the ward hears of it within 10 s
        self.broker = BrokerWatch(settings.model_copy(update={
            "kafka_admin_timeout_s": min(settings.kafka_admin_timeout_s, 3.0)}))
        self.triton_down: tuple[float, str] | None = None  # since when, and why, Triton does not answer
        self.unread: tuple[float, int] | None = None  # (when, records): the group's lag at its last measurement
        #: since when the broker watch has failed (None: reached at the last check)
        self.broker_failing_since: float | None = None
        self.broker_failures = 0
        self.app.timer(interval=settings.broker_watch_s, name="broker-watch")(self.watch_broker)
        if self.pipeline is not None:
            self._pipeline_timers()

    def _pipeline_timers(self) -> None:
        s, app = self.settings, self.app
        app.task(self.analysis_ticks)
        app.timer(interval=s.escalation_check_s, name="escalations")(self.escalations)
        app.timer(interval=s.worker_alive_s, name="heartbeat")(self.heartbeat)
        if s.models_enabled:
            app.timer(interval=s.broker_watch_s, name="triton-watch")(self.watch_triton)
        app.timer(interval=s.lag_probe_s, name="consumer-lag")(self.consumer_lag)
        app.task(self.alert_relay)
        app.on_partitions_revoked.connect(self.forget_revoked)

    async def watch_broker(self) -> None:
        """Whether the broker answers (the heartbeat reports it: the station names a broker outage as such),
        and an embedded broker recreated empty: restart, so the consumer starts again from its log."""
        try:
            new_id = await self.broker.recreated()
        except Exception as exc:  # the broker is away: the consumer waits for it, nothing to decide yet
            self.broker_failures += 1
            if self.broker_failing_since is None:
                self.broker_failing_since = time.time()
            if self.broker_failures == 1:
                log.warning("the broker is unreachable (%s: %s); records wait in the producers' outboxes",
                            type(exc).__name__, exc)
            return
        if self.broker_failures and self.broker_failing_since is not None:
            log.warning("the broker is reachable again after %.0f s", time.time() - self.broker_failing_since)
        self.broker_failures, self.broker_failing_since = 0, None
        if new_id is not None:
            restart_worker(f"the broker was recreated (cluster id {self.broker.known} -> {new_id}); "
                           "an embedded broker's log starts again empty")

    async def analysis_ticks(self) -> None:
        await tick_every(self.settings.scheduler_tick_s, self.analysis_cadence)

    async def analysis_cadence(self) -> None:
        assert self.pipeline is not None
        try:
            await self.pipeline.tick()
        except Exception as exc:  # one bad tick must not stop the next (in an outage the records wait)
            log_failure(log, "analysis tick", exc)

    async def escalations(self) -> None:
        assert self.store is not None
        try:
            for aid in await self.store.run_escalations():
                log.warning("alert %s escalated: not acknowledged in time", aid)
        except Exception as exc:
            log_failure(log, "escalation round", exc)

    async def watch_triton(self) -> None:
        """Whether Triton answers, between model rounds (the heartbeat reports it as models degraded)."""
        scorer = None if self.pipeline is None else self.pipeline.scorer
        if scorer is None:
            return
        reason = await scorer.client.unready_reason()
        if reason is None:
            if self.triton_down is not None:
                log.warning("Triton answers again after %.0f s", time.time() - self.triton_down[0])
            self.triton_down = None
        elif self.triton_down is None:
            log.warning("%s: the models are degraded, the rules keep alarming", reason)
            self.triton_down = (time.time(), reason)

    def report(self) -> WorkerReport:
        """What this worker can reach, for the heartbeat."""
        models = self.triton_down or (None if self.pipeline is None else self.pipeline.models_down)
        return WorkerReport(t=time.time(),
                            broker_unreachable_since=self.broker_failing_since,
                            models_degraded_since=None if models is None else models[0],
                            models_detail=None if models is None else models[1],
                            unread_at=None if self.unread is None else self.unread[0],
                            unread_records=None if self.unread is None else self.unread[1])

    async def heartbeat(self) -> None:
        assert self.redis is not None
        try:
            await beat(self.redis, keep_s=24 * 3600, report=self.report())
        except Exception as exc:  # Redis away: the station says so by the heartbeat's age
            log.warning("heartbeat not written: %s", exc)

    async def consumer_lag(self) -> None:
        from stream.core.kafka import partition_lag

        try:
            lags = await partition_lag(self.settings)
            for (topic, partition), (lag, _known) in lags.items():
                CONSUMER_LAG.labels(topic, str(partition)).set(lag)
            self.unread = (time.time(), sum(lag for lag, _known in lags.values()))
        except Exception as exc:  # the metric is best effort; processing goes on
            log.warning("consumer lag not measured: %s", exc)

    async def alert_relay(self) -> None:
        from stream.core.kafka import start_producer
        from stream.worker.relay import AlertRelay

        assert self.redis is not None and self.store is not None
        producer = await start_producer(self.settings)
        try:
            await AlertRelay(self.redis, self.store, producer, self.settings.topic_names().alerts,
                             lease_s=self.settings.relay_lease_s).run(self.settings.relay_interval_s)
        finally:
            await producer.stop()

    async def forget_revoked(self, sender: Any, /, *_args: Any, signal: BaseSignalT[Any], **_kwargs: Any) -> None:
        """Partitions moved to another worker: nothing of their patients stays in memory here."""
        assert self.pipeline is not None
        self.pipeline.forget_all()


async def tick_every(interval_s: float, tick: Callable[[], Awaitable[None]]) -> None:
    """Run ``tick`` every ``interval_s``, start to start, until cancelled.

    Faust's timer sleeps its interval after each tick has ended, so a tick that took 0.3 s made every bed that
    fell due wait 0.3 s more before the next one saw it (docs/SCALING.md). A tick that overruns its interval is
    followed at once by the next; starts it missed are not made up.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time() + interval_s
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        await tick()
        next_at = max(next_at + interval_s, loop.time())


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
    from stream.worker.gc_tuning import tune_gc

    try:
        for line in asyncio.run(reset_stale_offsets(settings)):
            log.warning("consumer offsets from a previous broker: %s", line)
    except Exception as exc:  # broker away at start: the consumer will wait for it
        log.warning("committed offsets not checked (%s: %s)", type(exc).__name__, exc)
    worker = faust_worker(Worker(settings).app, loglevel, logging_config(settings.log_format, loglevel))
    tuned = tune_gc(settings.worker_gc_young_threshold)
    if tuned is not None:
        log.info("garbage collector: thresholds %s, %d start-up objects frozen", tuned.thresholds, tuned.frozen)
    worker.execute_from_commandline()


def faust_worker(app: faust.App, loglevel: str, config: dict[str, Any]) -> faust.Worker:
    """Faust's worker for ``app``, without its terminal spinner.

    At a log level of WARNING or above Faust keeps a progress spinner that spins on every log record: it
    sets the root logger to DEBUG and adds a handler at DEBUG, so every debug line of aiokafka and Faust
    (several per fetch) was built, formatted for nothing and dropped. A worker's output is a log, never a
    terminal to animate.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=config)
    worker.spinner = None
    return worker
