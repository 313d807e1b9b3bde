"""The producers' outbox carries a broker outage: bounded, ordered, nothing lost (stream/core/outbox.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import KafkaConnectionError

from stream.core.outbox import Outbox, OutboxFull


class FlakyBroker:
    """Stands in for the Kafka client: keeps what it acknowledged, fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.log: list[bytes] = []
        self.connections = 0

    async def connect(self) -> FlakyBroker:
        if self.down:
            raise KafkaConnectionError("broker unreachable")
        self.connections += 1
        return self

    async def send(self, topic: str, value: bytes, key: bytes | None = None, headers=None) -> asyncio.Future:
        if self.down:
            raise KafkaConnectionError("connection lost")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(partition=0, offset=len(self.log)))  # as aiokafka's RecordMetadata
        self.log.append(value)
        return fut

    async def stop(self) -> None:
        pass


def outbox(broker: FlakyBroker, **kw) -> Outbox:
    return Outbox(broker.connect, name="test", retry_first_s=0.01, retry_max_s=0.02, **kw)  # type: ignore[arg-type]


def test_records_held_through_an_outage_arrive_in_order_once_the_broker_is_back() -> None:
    async def scenario() -> tuple[list[bytes], int]:
        broker = FlakyBroker()
        async with outbox(broker, batch=3) as box:
            for i in range(5):
                box.offer("t", None, b"%d" % i)
            assert await box.flush(1.0)
            broker.down = True
            for i in range(5, 20):
                box.offer("t", None, b"%d" % i)
            await asyncio.sleep(0.1)
            assert box.held == 15 and not box.broker_up  # held, not dropped
            broker.down = False
            assert await box.flush(2.0)
            return broker.log, broker.connections

    log, connections = asyncio.run(scenario())
    assert log == [b"%d" % i for i in range(20)]
    assert connections >= 2  # a fresh connection after the failure


def test_a_full_outbox_refuses_whole_batches_and_put_waits_for_room() -> None:
    async def scenario() -> None:
        broker = FlakyBroker()
        broker.down = True
        box = outbox(broker, max_records=4)
        await box.start()
        box.offer_many([("t", None, b"a"), ("t", None, b"b"), ("t", None, b"c")])
        with pytest.raises(OutboxFull):
            box.offer_many([("t", None, b"d"), ("t", None, b"e")])  # all or nothing
        assert box.held == 3
        box.offer("t", None, b"d")
        waiting = asyncio.create_task(box.put("t", None, b"e"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # back-pressure while the broker is away
        broker.down = False
        await asyncio.wait_for(waiting, 2.0)
        assert await box.flush(2.0)
        assert broker.log == [b"a", b"b", b"c", b"d", b"e"]
        assert await box.stop() == 0

    asyncio.run(scenario())


def test_byte_bound_counts_keys_and_values() -> None:
    async def scenario() -> None:
        box = outbox(FlakyBroker(), max_bytes=10)
        box.offer("t", b"k", b"123456789")
        with pytest.raises(OutboxFull):
            box.offer("t", None, b"x")

    asyncio.run(scenario())


def test_stop_reports_what_could_not_be_delivered() -> None:
    async def scenario() -> int:
        broker = FlakyBroker()
        broker.down = True
        box = await outbox(broker).start()
        box.offer("t", None, b"kept until the end")
        return await box.stop(flush_timeout_s=0.1)

    assert asyncio.run(scenario()) == 1


def test_records_a_recreated_broker_lost_are_sent_again_first_once_it_has_its_topics() -> None:
    async def scenario() -> list[bytes]:
        broker = FlakyBroker()
        identity = {"cluster": "run-1", "topics": frozenset({"t"})}

        async def probe() -> tuple[str, frozenset[str]]:
            return identity["cluster"], identity["topics"]

        box = Outbox(broker.connect, name="test", retry_first_s=0.01, retry_max_s=0.02,  # type: ignore[arg-type]
                     probe=probe, probe_s=0.0, keep_acked_s=60)  # probe before every send
        async with box:
            for i in range(3):
                box.offer("t", None, b"%d" % i)
            assert await box.flush(1.0)
            broker.log.clear()  # the broker died with its log...
            identity.update(cluster="run-2", topics=frozenset())  # ...and came back empty, topics not created yet
            box.offer("t", None, b"3")
            await asyncio.sleep(0.1)
            assert broker.log == []  # nothing sent into a broker without its topics
            identity["topics"] = frozenset({"t"})
            assert await box.flush(2.0)
            assert box.resent_after_recreation == 3
            return list(broker.log)

    assert asyncio.run(scenario()) == [b"0", b"1", b"2", b"3"]


def test_acknowledged_records_are_kept_until_the_workers_read_them_however_long_they_were_down() -> None:
    """The overlapping fault: the workers stop reading, and long after, the broker dies with its log. What the
    group had not committed is sent again to the new broker, not only the last 30 s; what it had read is not."""
    async def scenario() -> tuple[list[bytes], int, int]:
        broker = FlakyBroker()
        state = {"cluster": "run-1", "committed": {("t", 0): 0}}

        async def probe() -> tuple[str, frozenset[str]]:
            return state["cluster"], frozenset({"t"})

        async def committed(wanted: frozenset[tuple[str, int]]) -> dict[tuple[str, int], int]:
            assert wanted == {("t", 0)}  # asked only for the partitions kept records are on
            return dict(state["committed"])

        box = outbox(broker, probe=probe, probe_s=0.0, committed=committed, keep_acked_s=0.0)
        async with box:
            for i in range(10):
                box.offer("t", None, b"%d" % i)
            assert await box.flush(1.0)
            state["committed"] = {("t", 0): 4}  # the workers read 0-3, then stopped
            box.offer("t", None, b"10")
            assert await box.flush(1.0)
            kept = box.kept_for_broker_loss
            broker.log.clear()  # the broker died with its log and came back empty
            state.update(cluster="run-2", committed={})
            box.offer("t", None, b"11")
            assert await box.flush(2.0)
            return list(broker.log), kept, box.resent_after_recreation

    log, kept, resent = asyncio.run(scenario())
    assert kept == 7 and resent == 7
    assert log == [b"%d" % i for i in range(4, 12)]


def test_the_kept_records_are_bounded_and_what_was_let_go_is_counted(caplog) -> None:
    async def scenario() -> tuple[int, int]:
        broker = FlakyBroker()

        async def probe() -> tuple[str, frozenset[str]]:
            return "run-1", frozenset({"t"})

        async def committed(_wanted: frozenset[tuple[str, int]]) -> dict[tuple[str, int], int]:
            return {}  # the workers read nothing

        box = outbox(broker, probe=probe, probe_s=0.0, committed=committed, keep_acked_records=5)
        async with box:
            for i in range(12):
                box.offer("t", None, b"%d" % i)
            assert await box.flush(1.0)
            return box.kept_for_broker_loss, box.dropped_from_retention

    with caplog.at_level("WARNING", logger="ctgwatch.outbox"):
        kept, dropped = asyncio.run(scenario())
    assert (kept, dropped) == (5, 7)
    assert sum("let go" in r.getMessage() for r in caplog.records) == 1  # once per episode, not per record
