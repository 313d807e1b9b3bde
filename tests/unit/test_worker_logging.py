"""The worker's logging: a quiet level keeps library debug lines from ever being built."""

from __future__ import annotations

import logging

import pytest

from stream.core.logs import logging_config


@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_no_debug_record_is_built_at_the_workers_log_level(level: str) -> None:
    import faust

    from stream.worker.app import faust_worker

    root_level, handlers = logging.root.level, list(logging.root.handlers)
    try:
        worker = faust_worker(faust.App("t-logging", autodiscover=False, web_enabled=False), level,
                              logging_config("text", level))
        worker._setup_logging()  # what execute_from_commandline does first
        assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
        assert logging.root.level == logging.getLevelName(level.upper())
    finally:
        logging.root.setLevel(root_level)
        logging.root.handlers[:] = handlers
