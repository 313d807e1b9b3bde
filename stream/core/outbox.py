"""A bounded outbox between a producer of records and the broker, that carries a broker outage.

The embedded broker keeps its log in memory, and any broker can be away for a
while (restart, network). A bedside monitor does not stop producing samples
for that, so every producer of ctgwatch (the gateway, the simulator, the
replayer) hands its records to an :class:`Outbox` instead of to the Kafka
client directly:

- records leave in the order they came, in batches, and are removed only once
  the broker acknowledged them; a failed batch is resent whole after a capped
  exponential backoff, on a new connection (a resend may deliver a record
  twice: the worker's windows are idempotent and it recognises a duplicate);
- the outbox is bounded (records and bytes): :meth:`Outbox.offer` refuses
  with :class:`OutboxFull` when it cannot keep more (the gateway answers 503 /
  MLLP ``AE`` and the device keeps the data), :meth:`Outbox.put` waits for
  room (the simulator and the replayer slow down, as a monitor's own buffer
  would hold the samples);
- one warning when the broker goes away and one when it is back, with how
  many records were held, not a log line per attempt;
- acknowledged records are kept until the worker group has committed past
  them (the probe reads the group's committed offsets; without them, for
  ``keep_acked_s``): when the broker turns out to be a new one (its cluster id
  changed: an embedded broker recreated after a crash starts with an empty
  log), they are sent again, first, once the new broker has its topics. So
  what the dead broker had acknowledged but no worker had read yet is not lost
  with it, however long the workers were down before it died. The kept
  records are bounded (``keep_acked_records``, ``keep_acked_bytes``): past the
  bound the oldest are let go, counted (``dropped_from_retention``) and
  logged once per episode: they are on the broker, and lost only if its log
  is lost before a worker reads them.

The buffer is in memory: a producer process killed during a broker outage
loses what it held (the gateway's devices resend what was not acknowledged
to them only if the gateway refused it, so keep the outbox small enough that
a crash is the rarer event and run Kafka replicated in production).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.core.errors import SetupError
from stream.core.metrics import OUTBOX_BROKER_UP, OUTBOX_HELD, PUBLISH_SECONDS

log = logging.getLogger("ctgwatch.outbox")

Connect = Callable[[], Awaitable[AIOKafkaProducer]]
#: Returns the broker cluster's id and the topics it has (see :func:`stream.core.kafka.broker_identity`).
Probe = Callable[[], Awaitable[tuple[str, frozenset[str]]]]
#: Returns the worker group's committed offset (the next record it reads) of each of these (topic, partition),
#: where it has one; None when it cannot be read now (see :class:`stream.core.kafka.GroupOffsets`).
ReadCommitted = Callable[[frozenset[tuple[str, int]]], Awaitable["dict[tuple[str, int], int] | None"]]


class BrokerNotReady(Exception):
    """A recreated broker whose topics are not created yet: wait before sending into it."""


class OutboxFull(Exception):
    """The outbox holds as much as it may: refuse, the sender keeps the data and retries."""


Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class _Item:
    topic: str
    key: bytes | None
    value: bytes
    queued_at: float
    headers: Headers | None = None

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"")


@dataclass(frozen=True)
class _Acked:
    """A record the broker acknowledged, kept (with where it was placed) until the worker group has read it."""

    acked_at: float
    item: _Item
    partition: int
    offset: int


class Outbox:
    """Ordered, bounded, at-least-once delivery to the broker that waits out its outages.

    Parameters
    ----------
    connect
        Returns a started producer (called again after a failure: a fresh connection).
    name
        Who is producing, for the logs and the metrics (``gateway``, ``simulator``...).
    max_records, max_bytes
        The bound; a record that would exceed either is refused (:meth:`offer`) or waits (:meth:`put`).
    batch
        Records per send; all of a batch are acknowledged before the next leaves.
    send_timeout_s
        A batch not acknowledged in this time counts as a failure (the broker is away).
    probe, probe_s
        Asks the broker's cluster id and topics, after a reconnection and every ``probe_s`` while sending
        or while acknowledged records are kept.
    committed, on_stop
        Reads the worker group's committed offsets (with each probe while records are kept): a record is
        kept until the group has committed past it. Without it (or while it cannot be read), acknowledged
        records are kept for ``keep_acked_s``. ``on_stop`` closes what it holds open.
    keep_acked_records, keep_acked_bytes
        The bound of the kept records; past it the oldest are let go (counted, logged once per episode).
    """

    def __init__(
        self,
        connect: Connect,
        *,
        name: str,
        max_records: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        batch: int = 500,
        send_timeout_s: float = 10.0,
        retry_first_s: float = 0.2,
        retry_max_s: float = 5.0,
        probe: Probe | None = None,
        probe_s: float = 2.0,
        committed: ReadCommitted | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        keep_acked_s: float = 30.0,
        keep_acked_records: int = 100_000,
        keep_acked_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._connect = connect
        self.name = name
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.batch = batch
        self.send_timeout_s = send_timeout_s
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self._queue: deque[_Item] = deque()
        self._bytes = 0
        self._nonempty = asyncio.Event()
        self._progress = asyncio.Event()  # replaced after each delivered batch: waiters wake and re-check
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._probe = probe
        self.probe_s = probe_s
        self._read_committed = committed
        self._on_stop = on_stop  # closes what ``committed`` holds open
        self.keep_acked_s = keep_acked_s
        self.keep_acked_records = keep_acked_records
        self.keep_acked_bytes = keep_acked_bytes
        self._acked: deque[_Acked] = deque()
        self._acked_bytes = 0
        self._committed: dict[tuple[str, int], int] | None = None  # the group's, as the last probe read them
        self.dropped_from_retention = 0  # acknowledged records let go before the group had read them
        self._retention_full = False
        self._cluster: str | None = None
        self._probed_at = float("-inf")
        self.resent_after_recreation = 0
        self.delivered = 0
        self.broker_up = True
        self._down_since: float | None = None

    # -- what the producer side sees ---------------------------------------------
    @property
    def held(self) -> int:
        """Records not yet acknowledged by the broker."""
        return len(self._queue)

    def oldest_age_s(self, now: float | None = None) -> float:
        """How long the oldest held record has waited (0 when empty)."""
        if not self._queue:
            return 0.0
        return (time.monotonic() if now is None else now) - self._queue[0].queued_at

    def room_for(self, sizes: list[int]) -> bool:
        return len(self._queue) + len(sizes) <= self.max_records and self._bytes + sum(sizes) <= self.max_bytes

    def offer_many(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        """Queue all of ``records`` (topic, key, value) or none: :class:`OutboxFull` when there is no room."""
        sizes = [len(v) + len(k or b"") for _t, k, v in records]
        if not self.room_for(sizes):
            raise OutboxFull(
                f"{self.held} records ({self._bytes / 1e6:.1f} MB) already wait for the broker "
                f"(limit {self.max_records} records, {self.max_bytes / 1e6:.1f} MB)"
                + ("" if self.broker_up else "; the broker is unreachable"))
        now = time.monotonic()
        for (topic, key, value), size in zip(records, sizes):
            self._queue.append(_Item(topic, key, value, now))
            self._bytes += size
        OUTBOX_HELD.labels(self.name).set(len(self._queue))
        self._nonempty.set()

    def offer(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.offer_many([(topic, key, value)])

    async def put(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        """Queue one record, waiting for room while the outbox is full (back-pressure).

        A single record larger than the bound goes alone (else it would wait forever).
        """
        size = len(value) + len(key or b"")
        while not self.room_for([size]) and self._queue:
            await self._progress.wait()
        self._queue.append(_Item(topic, key, value, time.monotonic(), headers))
        self._bytes += size
        OUTBOX_HELD.labels(self.name).set(len(self._queue))
        self._nonempty.set()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far is acknowledged; False if ``timeout_s`` ran out first."""
        target = self.delivered + len(self._queue)
        try:
            async with asyncio.timeout(timeout_s):
                while self.delivered < target:
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, *, require_broker: bool = False) -> Outbox:
        """Start delivering; with ``require_broker`` connect first and let a setup error surface
        (a command started against a wrong address should say so at once, not hold forever)."""
        if require_broker and self._producer is None:
            self._producer = await self._connect()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")
        return self

    async def stop(self, flush_timeout_s: float = 10.0) -> int:
        """Deliver what is held (up to ``flush_timeout_s``), then close; returns records left undelivered."""
        if self._queue and self._task is not None:
            await self.flush(flush_timeout_s)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._close_producer()
        if self._on_stop is not None:
            await self._on_stop()
        if self._queue:
            log.error("%s: %d records were still waiting for the broker at shutdown and are lost",
                      self.name, len(self._queue))
        return len(self._queue)

    async def __aenter__(self) -> Outbox:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- the sender -------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.retry_first_s
        while True:
            if not self._queue:
                await self._idle()
                continue
            try:
                await self._check_broker()
                batch = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
                placed = await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker (or the way to it) is away: keep the batch, try again
                if not isinstance(exc, (KafkaError, OSError, TimeoutError, BrokerNotReady, SetupError)):
                    log.exception("%s: unexpected failure while sending (kept, retrying)", self.name)
                self._went_down(exc)
                await self._close_producer()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            delay = self.retry_first_s
            now = time.monotonic()
            for item, where in zip(batch, placed):
                self._queue.popleft()
                self._bytes -= item.size
                PUBLISH_SECONDS.observe(now - item.queued_at)
                self._acked.append(_Acked(now, item, *where))
                self._acked_bytes += item.size
            self._let_go(now)
            self.delivered += len(batch)
            OUTBOX_HELD.labels(self.name).set(len(self._queue))
            self._came_back()
            self._progress.set()
            self._progress = asyncio.Event()

    def _let_go(self, now: float, read_anew: bool = False) -> None:
        """Forget acknowledged records the group has read (``read_anew``: its offsets were just read; with no
        way to read them, records older than ``keep_acked_s``); past the bound, the oldest, counted and logged
        once per episode."""
        if self._read_committed is not None:  # kept until the group has read them (bounded below)
            done = self._committed or {}
            if read_anew and any(a.offset < done.get((a.item.topic, a.partition), -1) for a in self._acked):
                kept = deque(a for a in self._acked if a.offset >= done.get((a.item.topic, a.partition), -1))
                self._acked, self._acked_bytes = kept, sum(a.item.size for a in kept)
        else:
            while self._acked and now - self._acked[0].acked_at > self.keep_acked_s:
                self._acked_bytes -= self._acked.popleft().item.size
        over = 0
        while self._acked and (len(self._acked) > self.keep_acked_records or self._acked_bytes > self.keep_acked_bytes):
            self._acked_bytes -= self._acked.popleft().item.size
            over += 1
        if over:
            self.dropped_from_retention += over
            if not self._retention_full:
                log.warning("%s: %d acknowledged records are kept for a broker loss (limit %d records, %.0f MB) "
                            "and the worker group has not read them yet; the oldest are let go (they are on the "
                            "broker, and lost only if its log is lost before a worker reads them)",
                            self.name, len(self._acked), self.keep_acked_records, self.keep_acked_bytes / 1e6)
            self._retention_full = True
        elif self._retention_full and len(self._acked) < self.keep_acked_records // 2:
            self._retention_full = False
            log.warning("%s: the workers caught up; %d acknowledged records had been let go meanwhile",
                        self.name, self.dropped_from_retention)

    async def _read_group(self) -> None:
        """The group's committed offsets of the partitions kept records are on; then let go what it read.
        Unreadable (the broker busy, an old broker): the offsets last read stand, and nothing is let go."""
        if self._read_committed is None or not self._acked:
            return
        wanted = frozenset((a.item.topic, a.partition) for a in self._acked if a.partition >= 0)
        committed = await self._read_committed(wanted)
        if committed is not None:
            self._committed = {**(self._committed or {}), **committed}
            self._let_go(time.monotonic(), read_anew=True)

    @property
    def kept_for_broker_loss(self) -> int:
        """Acknowledged records kept until the worker group has read them."""
        return len(self._acked)

    async def _idle(self) -> None:
        """Wait for records; meanwhile keep probing while acknowledged records are still kept, so a
        broker recreated after the last send is noticed even when nothing new comes (and the records
        the group has read meanwhile are let go)."""
        self._let_go(time.monotonic())
        self._nonempty.clear()
        watching = self._probe is not None and bool(self._acked)
        try:
            await asyncio.wait_for(self._nonempty.wait(), self.probe_s if watching else None)
        except TimeoutError:
            try:
                await self._check_broker()
            except Exception:  # away or not ready: the next round asks again
                pass

    async def _check_broker(self) -> None:
        """Is the broker the one we delivered to? If it was recreated, put back what it lost.

        Asked after every reconnection and every ``probe_s`` while sending (no probe: never).
        """
        now = time.monotonic()
        if self._probe is None or (self._producer is not None and now - self._probed_at < self.probe_s):
            return
        cluster, topics = await self._probe()
        self._probed_at = now
        if self._cluster is None or cluster == self._cluster:
            self._cluster = cluster
            await self._read_group()
            return
        lost = [a.item for a in self._acked if self._read_committed is not None or now - a.acked_at <= self.keep_acked_s]
        head = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
        missing = {i.topic for i in lost + head} - topics
        if missing:
            raise BrokerNotReady(f"the recreated broker has no topic {', '.join(sorted(missing))} yet")
        self._queue.extendleft(reversed(lost))
        self._bytes += sum(i.size for i in lost)
        self._acked.clear()
        self._acked_bytes = 0
        self._committed = None  # the new broker's group starts again
        self._cluster = cluster
        self.resent_after_recreation += len(lost)
        log.warning("%s: the broker was recreated (its log starts empty): sending again the %d records it had "
                    "acknowledged that the workers had not read", self.name, len(lost))

    async def _send(self, batch: list[_Item]) -> list[tuple[int, int]]:
        """Send a batch and wait until every record is settled (acknowledged or failed); returns where each
        record was placed, (partition, offset).

        The client's own request timeout (``connect`` sets it to ``send_timeout_s``) expires a
        batch it could not deliver, so once all futures settled it holds nothing that could still
        reach the broker later, out of order; the outer deadline only guards against a hang.
        """
        async with asyncio.timeout(self.send_timeout_s * 2 + 5.0):
            if self._producer is None:
                self._producer = await self._connect()
            futures = [await self._producer.send(i.topic, i.value, key=i.key, headers=i.headers) for i in batch]
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise failed[0]
        return [(int(getattr(o, "partition", -1)), int(getattr(o, "offset", -1))) for o in outcomes]

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5.0)
            except Exception:  # closing a connection to a dead broker: nothing to save here
                pass

    def _went_down(self, exc: BaseException) -> None:
        if self.broker_up:
            self.broker_up = False
            self._down_since = time.monotonic()
            OUTBOX_BROKER_UP.labels(self.name).set(0)
            log.warning("%s: the broker is unreachable (%s: %s); holding %d records and retrying",
                        self.name, type(exc).__name__, exc, len(self._queue))

    def _came_back(self) -> None:
        if not self.broker_up:
            self.broker_up = True
            OUTBOX_BROKER_UP.labels(self.name).set(1)
            log.warning("%s: the broker is back after %.1f s; held records delivered, %d still queued",
                        self.name, time.monotonic() - (self._down_since or time.monotonic()), len(self._queue))
