"""The labour record: the 1-Hz chart archived behind the analysis window, the 5-min trend points."""

from __future__ import annotations

import uuid

import numpy as np

from detectors.ctg import analyse_ctg
from stream.alarms.handling import AlertHandling
from stream.core.schemas import CtgPacket
from stream.sources.ctg_simulator import Scenario, simulate_ctg
from stream.state.alerts import AlertStore
from stream.state.labour_record import (
    ChartMinutes,
    LabourRecordStore,
    anomaly_marks,
    pack_minute,
    trend_point,
    unpack_minute,
)
from stream.state.patient_status import ModelError, TraceMark
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline


def test_a_minute_round_trips_through_its_bytes() -> None:
    fhr = np.array([140.4, np.nan, 90.0] * 20)
    uc = np.arange(60, dtype=float)
    uc[5] = np.nan
    start, f, u, m = unpack_minute(pack_minute(1_700_000_040.0, fhr, uc, None))
    assert start == 1_700_000_040.0 and m is None
    assert np.array_equal(np.isnan(f), np.isnan(fhr)) and f[0] == 140.0 and f[2] == 90.0
    assert u[0] == 0.0 and u[59] == 59.0 and np.isnan(u[5])


def test_a_trend_point_reports_the_analysis() -> None:
    sim = simulate_ctg(Scenario("late", duration_s=1800.0, decel_kind="late", decel_span=(600.0, 1800.0)), seed=2)
    analysis = analyse_ctg(sim.fhr, sim.uc, t0=0.0)
    point = trend_point(analysis, 1800.0)
    assert point.classification == analysis.classification and point.decelerations == len(analysis.decelerations) > 0
    assert point.deceleration_area > 0 and point.baseline_bpm is not None and point.window_s == 1800.0


def test_anomaly_marks_only_cover_the_newest_interval() -> None:
    error = ModelError(model="ctg_autoencoder", t0=1000.0, threshold=1.0, error=[2.0] * 600)
    assert [(m.start, m.end) for m in anomaly_marks(error, since=1540.0)] == [(1540.0, 1600.0)]


async def test_the_worker_archives_minutes_behind_the_analysis_and_a_trend_every_five_minutes(redis) -> None:
    patient, t0 = f"lr-{uuid.uuid4().hex[:6]}", 1_700_000_040.0  # on a minute
    sim = simulate_ctg(Scenario("late", duration_s=3000.0, decel_kind="late", decel_span=(600.0, 3000.0)), seed=4)
    pipeline = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-lr")), WindowStore(redis, capacity_s=3600),
                        Cadence(forget_idle_s=1e9))
    for i in range(0, sim.fhr.size, 4):
        await pipeline.on_record(CtgPacket(patient_id=patient, bed_id="bed-lr", device_id="m", start_ts=t0 + i / 4,
                                           fhr=[float(v) for v in sim.fhr[i:i + 4]], uc=[float(v) for v in sim.uc[i:i + 4]]))
        if i % 60 == 0:
            await pipeline.tick()
    await pipeline.tick()
    store = LabourRecordStore(redis)
    chart, marks = await store.chart(patient, t0, t0 + 3000)
    assert chart is not None and chart.t0 == t0
    # everything older than the window the newest minute was measured on is archived, nothing inside it
    window_s = pipeline.cadence.analysis_window_s
    assert 3000 - window_s - 60 <= chart.fhr.size <= 3000 - window_s
    expected = sim.fhr[: 4 * chart.fhr.size].reshape(-1, 4).mean(axis=1)
    shown = np.isfinite(chart.fhr)
    assert shown.mean() > 0.9 and np.abs(chart.fhr[shown] - expected[shown]).max() <= 0.5
    assert any(m.kind.endswith("deceleration") for m in marks) and all(m.end <= chart.t0 + chart.fhr.size for m in marks)
    # a restarted worker resumes the archive where it ended: the next archive adds, never rewrites
    assert await store.archived_until(patient) == chart.t0 + chart.fhr.size
    trend = await store.trend(patient)
    assert len(trend) >= 4 and all(b.t - a.t >= 300 for a, b in zip(trend, trend[1:]))
    assert trend[-1].t <= t0 + 3000 and trend[-1].decelerations > 0


async def test_marks_are_archived_with_the_minutes_they_end_in(redis) -> None:
    store = LabourRecordStore(redis)
    minutes = ChartMinutes(600.0, np.full(120, 140.0), np.full(120, 20.0), None)
    inside, later = TraceMark(kind="acceleration", start=610, end=650), TraceMark(kind="contraction", start=700, end=760)
    await store.archive("p", minutes, [inside, later])
    chart, marks = await store.chart("p", 0, 10_000)
    assert chart is not None and chart.fhr.size == 120 and marks == [inside]


def test_an_event_under_way_at_the_window_start_is_kept_whole() -> None:
    """The sliding analysis sees only the clipped tail of an event that began before its window:
    the earlier, whole event is kept and the tail dropped, so marks do not shrink and vanish."""
    from stream.state.patient_status import merge_marks

    whole = TraceMark(kind="contraction", start=126, end=168)
    tail, later = TraceMark(kind="contraction", start=141, end=196), TraceMark(kind="acceleration", start=300, end=320)
    assert merge_marks([whole], [tail, later], since=136, keep_from=0) == [whole, later]
    assert merge_marks([whole], [later], since=100, keep_from=0) == [later]  # not begun before: the new analysis rules


async def test_a_backlog_caught_up_faster_than_the_ticks_leaves_no_hole_in_the_archive(redis) -> None:
    """After an outage, a worker may take an hour or more of one patient's packets between two ticks (a small
    ward's backlog goes fast). Every minute must still be analysed before it leaves the window and archived:
    the packet path analyses a window the ticks have left behind by ``catch_up_analysis_s``."""
    patient, t0, end_s = f"lr-{uuid.uuid4().hex[:6]}", 1_700_000_040.0, 4 * 3600 - 1200
    sim = simulate_ctg(Scenario("normal", duration_s=4 * 3600.0), seed=5)

    def worker() -> Pipeline:
        return Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-lr")), WindowStore(redis, capacity_s=3600),
                        Cadence(forget_idle_s=1e9))
    pipeline = worker()

    async def send(first_s: int, last_s: int, tick_every_s: int | None) -> None:
        for s in range(first_s, last_s, 4):
            packets = [CtgPacket(patient_id=patient, bed_id="bed-lr", device_id="m", start_ts=t0 + i,
                                 fhr=[float(v) for v in sim.fhr[4 * i:4 * i + 4]],
                                 uc=[float(v) for v in sim.uc[4 * i:4 * i + 4]]) for i in range(s, s + 4)]
            assert await pipeline.on_ctg_batch(packets) == []
            if tick_every_s and s % tick_every_s == 0:
                await pipeline.tick()

    await send(0, 1200, tick_every_s=60)  # live: analysed every minute
    await send(1200, 9000, tick_every_s=None)  # the backlog: 2 h of packets, no tick between
    await pipeline.tick()
    pipeline = worker()  # a restart: the window is reloaded from Redis, never analysed by this worker
    await send(9000, end_s, tick_every_s=None)  # and 1.3 h more before its first tick
    await pipeline.tick()
    chart, _marks = await LabourRecordStore(redis).chart(patient, t0, t0 + end_s)
    assert chart is not None and chart.t0 == t0
    archived_to = await LabourRecordStore(redis).archived_until(patient)
    assert archived_to is not None and archived_to >= t0 + end_s - 1800 - 60 - 300
    assert np.isfinite(chart.fhr[: int(archived_to - t0)]).mean() > 0.95  # no hole: every minute there
    trend = await LabourRecordStore(redis).trend(patient)
    assert all(b.t - a.t <= 600 for a, b in zip(trend, trend[1:]))  # analysed all along, not only at the end
