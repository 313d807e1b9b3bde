"""Telling an outage of a service we run apart from bad input, and waiting it out.

A record that cannot be processed because Redis (or the broker behind the
dead-letter topic) is away is valid data: dead-lettering it would leave a
permanent hole in the patient's stored trace. So the worker holds the record,
retries with a capped exponential backoff and moves on only once it went
through. While it waits the agent does not take the next record, Faust does
not commit past it and, once its buffer is full, stops fetching that
partition; after the service is back the backlog is processed in order. A
worker killed while waiting loses nothing either: the record was never
committed and is read again by whoever owns the partition next.

Only errors that name an unreachable service count as an outage; anything
else is a bug or bad input and takes the dead-letter path (code ``internal``)
so one poisoned record cannot stop a ward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.exceptions
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
)

from stream.core.metrics import OUTAGE_RETRIES, OUTAGE_WAITING

log = logging.getLogger("ctgwatch.worker")

#: Exceptions that mean "a service is unreachable", not "this record is wrong". redis-py's
#: BusyLoadingError (Redis replaying its append-only file after a restart) is a ConnectionError.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.TryAgainError,
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    NotLeaderForPartitionError,
    NodeNotReadyError,
    ConnectionError,
    TimeoutError,
)


def outage_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain (itself, or what caused it) that says a service is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OUTAGE_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a service is unreachable."""
    return outage_cause(exc) is not None


def service_of(exc: BaseException) -> str:
    """Which service an outage error names, for the operator's log line."""
    module = type(exc).__module__
    if module.startswith("redis"):
        return "Redis"
    if module.startswith("aiokafka") or module.startswith("kafka"):
        return "the Kafka broker"
    return "a service"


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """A failed periodic round: one warning line for an outage (it passes), a traceback for a bug."""
    if is_outage(exc):
        logger.warning("%s skipped: %s: %s", what, type(exc).__name__, exc)
    else:
        logger.error("%s failed", what, exc_info=exc)


@dataclass
class OutageRetry:
    """Run one record's handling until it goes through, waiting out outages.

    ``first_s`` doubles per failed attempt up to ``max_s``. One warning when an
    outage starts and one when it ends, not a traceback per attempt.
    """

    first_s: float = 0.2
    max_s: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, action: Callable[[], Awaitable[None]], *, source: str,
                  on_outage: Callable[[BaseException], Awaitable[None] | None] | None = None) -> int:
        """Await ``action`` until it succeeds; returns how many attempts failed for an outage.

        A non-outage exception is raised to the caller at once. ``on_outage`` runs after each
        failed attempt (e.g. to drop in-memory state that may be half updated).
        """
        delay = self.first_s
        failures = 0
        started = 0.0
        while True:
            try:
                await action()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                failures += 1
                OUTAGE_RETRIES.inc()
                if failures == 1:
                    started = time.monotonic()
                    OUTAGE_WAITING.set(1)
                    log.warning("%s is unavailable (%s: %s): holding %s and retrying; nothing is "
                                "dead-lettered for an outage", service_of(exc), type(exc).__name__, exc, source)
                if on_outage is not None:
                    pending = on_outage(exc)
                    if pending is not None:
                        await pending
                await self.sleep(delay)
                delay = min(delay * 2, self.max_s)
                continue
            if failures:
                OUTAGE_WAITING.set(0)
                log.warning("service back after %.1f s (%d attempts): %s processed, the backlog follows",
                            time.monotonic() - started, failures + 1, source)
            return failures
