"""The worker tells an outage from bad input and waits the outage out (stream/worker/outage.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions
from aiokafka.errors import KafkaConnectionError

from stream.worker.outage import OutageRetry, is_outage


@pytest.mark.parametrize("exc", [
    redis.exceptions.ConnectionError("Connection refused"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    KafkaConnectionError("no broker"),
    ConnectionResetError(),
])
def test_unreachable_services_are_outages(exc: Exception) -> None:
    assert is_outage(exc)


def test_a_wrapped_outage_is_an_outage_and_a_bug_is_not() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("down")
        except redis.exceptions.ConnectionError as inner:
            raise RuntimeError("while saving the window") from inner
    except RuntimeError as outer:
        assert is_outage(outer)
    assert not is_outage(ValueError("bad sample"))
    assert not is_outage(redis.exceptions.ResponseError("WRONGTYPE"))


def test_retry_holds_the_record_until_the_service_is_back() -> None:
    attempts: list[int] = []
    waits: list[float] = []
    dropped: list[str] = []

    async def action() -> None:
        attempts.append(1)
        if len(attempts) < 6:
            raise redis.exceptions.ConnectionError("Connection refused")

    async def sleep(s: float) -> None:
        waits.append(s)

    retry = OutageRetry(first_s=0.1, max_s=0.5, sleep=sleep)
    failures = asyncio.run(retry.run(action, source="kafka:ctg.packets[0]@7",
                                     on_outage=lambda exc: dropped.append(type(exc).__name__)))
    assert failures == 5 and len(attempts) == 6
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]  # doubling, capped
    assert dropped == ["ConnectionError"] * 5  # half-applied state dropped before each retry


def test_retry_raises_bad_input_at_once() -> None:
    async def action() -> None:
        raise ValueError("not a number")

    async def sleep(_s: float) -> None:
        raise AssertionError("must not wait for a bug")

    with pytest.raises(ValueError):
        asyncio.run(OutageRetry(sleep=sleep).run(action, source="x"))


async def test_the_relay_waits_out_a_broker_without_a_traceback_a_round(caplog) -> None:
    """During a broker outage or right after a broker is recreated, aiokafka raises NodeNotReadyError or
    UnknownError: the relay says once that it waits for the broker, without a traceback (the chaos run's
    worker logged one every round)."""
    import asyncio
    import logging

    from aiokafka.errors import NodeNotReadyError, UnknownError

    from stream.worker.relay import AlertRelay

    errors = [NodeNotReadyError("node 111"), UnknownError(), UnknownError()]

    class Relay(AlertRelay):
        def __init__(self) -> None:  # only run()'s waiting is under test
            pass

        async def relay_once(self) -> int:
            if errors:
                raise errors.pop(0)
            raise asyncio.CancelledError  # stop the loop after it resumed

    with caplog.at_level(logging.WARNING, logger="ctgwatch.relay"):
        try:
            await Relay().run(interval_s=0.0)
        except asyncio.CancelledError:
            pass
    lines = [r for r in caplog.records if r.name == "ctgwatch.relay"]
    assert len(lines) == 1 and "waiting: the Kafka broker" in lines[0].getMessage() and not lines[0].exc_info
