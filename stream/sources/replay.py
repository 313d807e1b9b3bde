"""Replaying real CTG recordings (read by :mod:`stream.sources.recordings`) into the topics.

Each record becomes one patient (``ctu-NNNN``) on its own bed; samples
outside the monitor's range become 0 (signal loss) and are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from stream.core.outbox import Outbox
from stream.core.schemas import CTG_FS_HZ
from stream.core.topics import TopicNames
from stream.sources.publishing import PublishReport, Scheduled, ctg_packets, merge, publish_paced, time_base
from stream.sources.recordings import CtgRecording
from stream.sources.ward import bed_label

log = logging.getLogger("ctgwatch.replay")


def recording_schedule(
    recording: CtgRecording, bed_index: int, topics: TopicNames, *, t0: float, packet_s: float, first_bed: int = 1
) -> Iterator[Scheduled]:
    blanked = 0
    patient = f"ctu-{recording.record_id}"
    for seq, (offset, packet, n_blank) in enumerate(
        ctg_packets(
            patient_id=patient, bed_id=bed_label(first_bed + bed_index), device_id=f"replay-{recording.record_id}",
            fhr=recording.fhr, uc=recording.uc, t0=t0, packet_s=packet_s,
        )
    ):
        blanked += n_blank
        yield Scheduled(offset + len(packet.fhr) / CTG_FS_HZ, bed_index * 10_000_000 + seq, topics.ctg, packet)
    if blanked:
        log.info("%s: %d samples outside the monitor range replayed as signal loss", patient, blanked)


async def replay(
    outbox: Outbox,
    topics: TopicNames,
    recordings: list[CtgRecording],
    *,
    speed: float,
    packet_s: float,
    first_bed: int = 1,
) -> PublishReport:
    """All recordings start together, one bed each (numbered from ``first_bed``), paced by ``speed``."""
    t0 = time_base(max(r.duration_s for r in recordings), speed)
    schedule = merge(
        recording_schedule(r, i, topics, t0=t0, packet_s=packet_s, first_bed=first_bed) for i, r in enumerate(recordings)
    )
    return await publish_paced(outbox, schedule, speed=speed)
