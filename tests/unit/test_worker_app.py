"""The Faust app's configuration, without a broker."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from stream.core.settings import Settings
from stream.worker.app import Worker


async def noop(_record) -> None:  # noqa: ANN001
    return None


def test_the_worker_keeps_its_faust_data_under_the_state_directory(tmp_path: Path) -> None:
    """Faust's data directory lives under CTGWATCH_STATE_DIR, named by the app id, not in the current directory."""
    app = Worker(Settings(state_dir=tmp_path, worker_app_id="ward-7"), on_record=noop).app
    assert Path(app.conf.datadir) == tmp_path / "faust" / "ward-7-data"


def test_the_worker_registers_its_agents_and_timers_without_patching_the_app(tmp_path: Path) -> None:
    """The worker is an object that holds the app and the pipeline (no attribute added to the Faust app);
    the clinical timers come with the pipeline, the ingest agents and the broker watch always."""
    with_pipeline = Worker(Settings(state_dir=tmp_path, models_enabled=False))
    ingest_only = Worker(Settings(state_dir=tmp_path), on_record=noop)
    assert with_pipeline.pipeline is not None and ingest_only.pipeline is None
    assert not hasattr(with_pipeline.app, "pipeline")
    assert set(with_pipeline.app.agents) == set(ingest_only.app.agents) == {"ingest-ctg", "ingest-vitals"}
    assert len(with_pipeline.app._app_tasks) == len(ingest_only.app._app_tasks) + 5  # 3 timers, the analysis ticks and the relay
    revoked = with_pipeline.app.on_partitions_revoked
    assert with_pipeline.forget_revoked in {r for rs in revoked._filter_receivers.values() for r in rs}


def test_the_fetch_wait_patch_still_reaches_the_faust_and_aiokafka_internals_it_relies_on() -> None:
    """stream/worker/kafka_transport.py overrides a private Faust method and sets a private aiokafka field
    before start(); an upgrade that renames either fails here (the versions are pinned in pyproject.toml),
    and tests/integration/test_worker_fetch_wait.py measures that the wait is really used."""
    assert hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer")
    assert hasattr(faust_aiokafka.Consumer, "_new_consumer_thread")
    assert "self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


async def test_the_heartbeat_reports_a_broker_the_worker_cannot_reach(tmp_path: Path) -> None:
    """A failed check makes the broker unreachable in the worker's report, from the first failure on; the
    first check that reaches it again clears it. The station names the outage from this report."""
    worker = Worker(Settings(state_dir=tmp_path, models_enabled=False))
    reachable = {"now": False}

    async def recreated() -> str | None:
        if not reachable["now"]:
            raise ConnectionError("connection refused")
        return None

    worker.broker.recreated = recreated  # type: ignore[method-assign]
    await worker.watch_broker()
    since = worker.report().broker_unreachable_since
    await worker.watch_broker()
    assert worker.report().broker_unreachable_since == since
    assert since is not None and since <= time.time()
    reachable["now"] = True
    await worker.watch_broker()
    assert worker.report().broker_unreachable_since is None and worker.report().models_degraded_since is None
