"""Noticing that the broker was recreated, and starting over on its new log.

The embedded broker keeps its log in memory: after a crash ``ctgwatch up``
starts a new one whose topics begin again at offset 0, with no committed
offsets. A worker that lived through that would be wrong in two ways: Faust
skips records below the offsets it had read from the old log (it takes them
for duplicates) and may commit those old offsets into the new broker, so the
new log's first records would never be analysed. Each broker run has its own
cluster id (the launcher gives it one), so the worker can tell:

- :class:`BrokerWatch` asks the broker for its cluster id on a timer; when it
  changed, the worker process re-executes itself (same pid, same arguments)
  and reads the new log from its start. The windows in Redis are idempotent,
  so records it sees again add nothing;
- :func:`reset_stale_offsets`, run before the consumer starts, moves a
  committed offset that lies beyond the end of its partition (committed by a
  worker into a log that was since recreated) back to the partition's start.
"""

from __future__ import annotations

import logging
import os
import sys

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from stream.core.kafka import broker_identity, group_reader
from stream.core.settings import Settings

log = logging.getLogger("ctgwatch.worker")


class BrokerWatch:
    """Remembers the cluster id seen first; :meth:`recreated` says when it changed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.known: str | None = None

    async def recreated(self) -> str | None:
        """The new cluster id if the broker is not the one seen first, else None (raises if unreachable)."""
        current, _topics = await broker_identity(self.settings)
        if self.known is None:
            self.known = current
            return None
        return current if current != self.known else None


async def reset_stale_offsets(settings: Settings) -> list[str]:
    """Move committed offsets that point past their partition's end back to its start.

    Returns one line per partition moved. Only possible while the group has no
    active member (a worker starting alone, or all workers restarting at once);
    otherwise the broker refuses and the lines say so.
    """
    names = settings.topic_names()
    consumer = await group_reader(settings)
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for topic in (names.ctg, names.vitals)
               for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            return []
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        stale = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is not None and committed > ends[tp]:
                stale[tp] = (committed, starts[tp])
        if not stale:
            return []
        consumer.assign(list(stale))
        lines = [f"{tp.topic}[{tp.partition}]: committed {old} is past the end {ends[tp]}; reset to {new}"
                 for tp, (old, new) in stale.items()]
        try:
            await consumer.commit({tp: OffsetAndMetadata(new, "") for tp, (_old, new) in stale.items()})
        except Exception as exc:  # the group has members: they hold the stale offsets in memory anyway
            lines.append(f"reset refused ({type(exc).__name__}: {exc}); restart every worker of the group")
        return lines
    finally:
        await consumer.stop()


def restart_worker(reason: str) -> None:
    """Re-execute this worker process with the arguments it was started with (pid kept)."""
    log.error("%s: restarting this worker to read the new log from its start", reason)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
