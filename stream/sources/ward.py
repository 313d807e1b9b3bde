"""A simulated ward: N beds of bedside monitors publishing into the topics.

Each bed is one patient with a CTG scenario (:mod:`stream.sources.ctg_simulator`) and a
maternal vital-signs scenario (:mod:`stream.sources.vitals_simulator`); bed ``i`` gets the
``i``-th of the standard scenarios (mix ``standard``) or a normal trace (mix
``normal``). Every injected event is published to the ground-truth topic
with absolute times, so a consumer can score alerts against it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.core.outbox import Outbox
from stream.core.schemas import GroundTruth, Reading, VitalsObservation
from stream.core.topics import TopicNames
from stream.sources.ctg_simulator import Scenario, scale_scenario, simulate_ctg, standard_scenarios
from stream.sources.ctg_simulator import continuation as ctg_continuation
from stream.sources.publishing import PublishReport, Scheduled, ctg_packets, merge, publish_paced, time_base
from stream.sources.vitals_simulator import VitalsScenario, simulate_vitals, standard_vitals_scenarios, vital_level
from stream.sources.vitals_simulator import continuation as vitals_continuation

log = logging.getLogger("ctgwatch.ward")

MIXES = ("standard", "normal")


@dataclass(frozen=True)
class Bed:
    index: int
    patient_id: str
    bed_id: str
    ctg: Scenario
    vitals: VitalsScenario
    seed: int


def bed_label(number: int) -> str:
    """The bed id a ward shows: ``bed-07``."""
    return f"bed-{number:02d}"


def assign_beds(
    n: int, *, seed: int = 0, mix: str = "standard", duration_s: float = 3600.0, vitals_interval_s: float = 300.0,
    first_bed: int = 1,
) -> list[Bed]:
    """``n`` beds numbered from ``first_bed`` (so a replayer beside the simulator takes other numbers)."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; choose one of {', '.join(MIXES)}")
    ctg_pool = [scale_scenario(s, duration_s) for s in standard_scenarios()]
    vitals_pool = standard_vitals_scenarios(duration_s, vitals_interval_s)
    beds = []
    for i in range(n):
        if mix == "normal":
            ctg = Scenario("normal", duration_s=duration_s)
            vitals = VitalsScenario("normal", duration_s, vitals_interval_s)
        else:
            ctg, vitals = ctg_pool[i % len(ctg_pool)], vitals_pool[i % len(vitals_pool)]
        beds.append(Bed(i, f"sim-{seed}-{i:03d}", bed_label(first_bed + i), ctg, vitals, seed * 1000 + i))
    return beds


def bed_schedule(bed: Bed, topics: TopicNames, *, t0: float, packet_s: float, round_no: int = 0) -> Iterator[Scheduled]:
    """Everything one bed publishes during one recording, in time order.

    Round 0 is the bed's scenario; later rounds (a demo gone live) continue it: patterns still going on at
    its end go on, a deteriorating mother stays deteriorated (``continuation``). The CTG's maternal heart
    rate follows the vitals' heart rate: one mother, one story.
    """
    seed = bed.seed + 7919 * round_no
    ctg_scenario = bed.ctg if round_no == 0 else ctg_continuation(bed.ctg)
    vitals_scenario = bed.vitals if round_no == 0 else vitals_continuation(bed.vitals, bed.ctg.duration_s)
    t4 = np.arange(int(ctg_scenario.duration_s * 4)) / 4.0
    ctg = simulate_ctg(ctg_scenario, seed=seed, maternal_hr=vital_level(vitals_scenario, "heart_rate", t4))
    vitals = simulate_vitals(vitals_scenario, seed=seed)
    seq = itertools.count(bed.index * 10_000_000)
    truths = []
    for event in ctg.events + vitals.events:
        truth = GroundTruth(
            patient_id=bed.patient_id, bed_id=bed.bed_id, event=event.kind,
            start_ts=t0 + event.start_s, end_ts=t0 + event.end_s, values=dict(event.values),
            scenario=f"{bed.ctg.name}+{bed.vitals.name}", seed=seed,
        )
        truths.append(Scheduled(0.0, next(seq), topics.groundtruth, truth))

    def packets() -> Iterator[Scheduled]:  # lazily: a long recording is many packets
        for offset, packet, _blanked in ctg_packets(
            patient_id=bed.patient_id, bed_id=bed.bed_id, device_id=f"sim-ctg-{bed.index:03d}",
            fhr=ctg.fhr, uc=ctg.uc, mhr=ctg.mhr, t0=t0, packet_s=packet_s, fhr_source="ultrasound",
        ):
            # A packet leaves the monitor when its last sample has been taken.
            yield Scheduled(offset + len(packet.fhr) / 4.0, next(seq), topics.ctg, packet)

    def observations() -> Iterator[Scheduled]:
        for sample in vitals.samples:
            ts = t0 + sample.t
            values = dict(sample.values)
            # the pulse the vitals monitor counts is the one the CTG monitor records: over the 20 s around it
            i = int(sample.t * 4)
            values["heart_rate"] = round(float(np.mean(ctg.mhr[max(0, i - 40):i + 40])), 1)
            readings: dict[str, Any] = {k: Reading(value=v, ts=ts) for k, v in values.items()}
            obs = VitalsObservation(
                patient_id=bed.patient_id, bed_id=bed.bed_id, device_id=f"sim-vitals-{bed.index:03d}",
                avpu="A", avpu_ts=ts, **readings,
            )
            yield Scheduled(sample.t, next(seq), topics.vitals, obs)

    return merge([truths, packets(), observations()])


async def run_ward(
    outbox: Outbox,
    topics: TopicNames,
    beds: list[Bed],
    *,
    speed: float,
    packet_s: float,
    follow: bool = False,
    stop: asyncio.Event | None = None,
) -> PublishReport:
    """Play every bed's recording; with ``follow``, keep going live (speed 1) with new recordings."""
    duration = max(b.ctg.duration_s for b in beds)
    t0 = time_base(duration, speed)
    total = PublishReport()
    for round_no in itertools.count():
        schedule = merge(bed_schedule(b, topics, t0=t0, packet_s=packet_s, round_no=round_no) for b in beds)
        report = await publish_paced(outbox, schedule, speed=speed, stop=stop)
        total.sent += report.sent
        total.wall_s += report.wall_s
        for k, v in report.by_topic.items():
            total.by_topic[k] = total.by_topic.get(k, 0) + v
        log.info("ward round %d: %d records in %.1f s", round_no, report.sent, report.wall_s)
        if not follow or (stop is not None and stop.is_set()):
            return total
        t0 += duration
        speed = 1.0
    return total
