"""Turning signal arrays into packets and publishing them at a chosen pace.

Shared by the bedside-monitor simulator and the CTU-UHB replayer: both have
whole recordings in memory and must play them into the topics as a monitor
would, at real time (``speed=1``) or faster.

Time base: samples are stamped with their recording time. At ``speed`` X > 1
a recording of D seconds is stamped from ``now - D (1 - 1/X)``, so that the
last packet is stamped "now" when it is sent and no packet ever lies in the
future (the ingest clock-skew check would refuse it); the worker sees
history arriving quickly, exactly as when a monitor back-fills.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from stream.core.outbox import Outbox
from stream.core.schemas import (
    CTG_FS_HZ,
    FHR_RANGE_BPM,
    MHR_RANGE_BPM,
    UC_RANGE,
    AnyRecord,
    CtgPacket,
    FhrSource,
    encode,
    record_key,
)


@dataclass(frozen=True, order=True)
class Scheduled:
    """A record due at ``offset_s`` seconds of recording time."""

    offset_s: float
    seq: int
    topic: str
    record: AnyRecord


def device_range(values: np.ndarray, lo: float, hi: float) -> tuple[list[float], int]:
    """Samples outside what a monitor reports become 0 (signal loss), as a monitor shows them.

    Returns the samples and how many were blanked (the caller reports it).
    """
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v) | (v < lo) | (v > hi)
    bad &= v != 0.0
    out = np.where(bad, 0.0, v)
    return [float(x) for x in np.round(out, 2)], int(bad.sum())


def ctg_packets(
    *,
    patient_id: str,
    bed_id: str,
    device_id: str,
    fhr: np.ndarray,
    uc: np.ndarray,
    t0: float,
    packet_s: float,
    mhr: np.ndarray | None = None,
    fhr_source: FhrSource = "unknown",
) -> Iterator[tuple[float, CtgPacket, int]]:
    """Slice 4 Hz channels into packets: (offset_s, packet, samples blanked)."""
    step = max(1, int(round(packet_s * CTG_FS_HZ)))
    n = len(fhr)
    for i in range(0, n, step):
        f, blank_f = device_range(fhr[i : i + step], *FHR_RANGE_BPM)
        u_raw = np.nan_to_num(np.asarray(uc[i : i + step], dtype=float), nan=0.0)
        u = [float(x) for x in np.round(np.clip(u_raw, *UC_RANGE), 2)]
        m, blank_m = (None, 0) if mhr is None else device_range(mhr[i : i + step], *MHR_RANGE_BPM)
        offset = i / CTG_FS_HZ
        packet = CtgPacket(
            patient_id=patient_id, bed_id=bed_id, device_id=device_id, start_ts=t0 + offset,
            fhr=f, uc=u, mhr=m, fhr_source=fhr_source,
        )
        yield offset, packet, blank_f + blank_m


def time_base(duration_s: float, speed: float, now: float | None = None) -> float:
    """Recording time 0 in Unix time, so that the last sample is sent at 'now' (see module doc)."""
    now = time.time() if now is None else now
    return now - duration_s * (1.0 - 1.0 / speed) if speed > 1.0 else now


def merge(streams: Iterable[Iterable[Scheduled]]) -> Iterator[Scheduled]:
    """Merge per-bed schedules (each already in time order) into one."""
    return heapq.merge(*streams)


@dataclass
class PublishReport:
    sent: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


async def publish_paced(
    outbox: Outbox,
    schedule: Iterable[Scheduled],
    *,
    speed: float,
    stop: asyncio.Event | None = None,
) -> PublishReport:
    """Send each record when its recording time comes (divided by ``speed``).

    Records go through the outbox (:mod:`stream.core.outbox`): during a broker
    outage they are held and resent, and when the outbox is full this waits,
    as a monitor's own memory would hold the samples. All are acknowledged
    before returning, so a finished run means the broker has every record.
    """
    start = time.monotonic()
    report = PublishReport()
    for item in schedule:
        if stop is not None and stop.is_set():
            break
        due = start + item.offset_s / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await outbox.put(item.topic, record_key(item.record), encode(item.record))
        report.sent += 1
        report.by_topic[item.topic] = report.by_topic.get(item.topic, 0) + 1
    await outbox.flush()
    report.wall_s = time.monotonic() - start
    return report
