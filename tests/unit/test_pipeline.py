"""The pipeline in-process on fakeredis: duplicates, window rebuild, idle patients."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest
from prometheus_client import REGISTRY

from stream.alarms.handling import AlertHandling
from stream.core.schemas import CtgPacket
from stream.state.alerts import AlertStore
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline


def packets(patient: str, t0: float, fhr: np.ndarray) -> list[CtgPacket]:
    return [CtgPacket(patient_id=patient, bed_id="bed-p", device_id="m", start_ts=t0 + i,
                      fhr=[float(v) for v in fhr[4 * i : 4 * i + 4]], uc=[15.0] * 4) for i in range(len(fhr) // 4)]


@pytest.fixture
async def pipeline(redis):
    ward = f"w-{uuid.uuid4().hex[:6]}"
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=ward)), WindowStore(redis, capacity_s=2400),
                 Cadence(forget_idle_s=3600.0))
    yield p


async def test_duplicates_add_nothing_and_a_new_pipeline_rebuilds_the_window(pipeline) -> None:
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 600
    fhr = np.full(4 * 120, 140.0)
    fhr[-4 * 20 :] = 0.0  # 20 s of loss at the end
    for pkt in packets(patient, t0, fhr):
        await pipeline.on_record(pkt)
    for pkt in packets(patient, t0, fhr)[-30:]:  # redelivered after a crash
        await pipeline.on_record(pkt)
    window = pipeline.window_of(patient)
    assert window.fhr.size == fhr.size and np.array_equal(window.fhr, fhr)
    # 20 s of loss: a notice on the bed (no acknowledgement), not an alarm (the policy wants 10 min)
    assert await pipeline.alerts.open_alerts() == []
    status = await pipeline.status.read(patient)
    assert [n.kind for n in status.notices] == ["signal_loss"] and status.notices[0].qualifying
    fresh = Pipeline(pipeline.redis, pipeline.alerts, pipeline.windows, pipeline.cadence)
    rebuilt = await fresh._window(patient, "bed-p")
    assert np.array_equal(rebuilt.fhr, fhr) and rebuilt.end_index == window.end_index
    assert rebuilt.fast.loss_samples == 4 * 20  # the fast-rule counters come back too


async def test_idle_patients_leave_memory(pipeline) -> None:
    patient = f"pp-{uuid.uuid4().hex[:6]}"
    for pkt in packets(patient, time.time() - 60, np.full(4 * 10, 140.0)):
        await pipeline.on_record(pkt)
    assert pipeline.window_of(patient) is not None
    pipeline.cadence = Cadence(forget_idle_s=0.0)
    await pipeline.tick()
    assert patient not in pipeline.patients


async def test_a_pathological_trace_raises_exactly_one_ctg_alarm_naming_all_its_reasons(redis) -> None:
    """A prolonged deceleration into a bradycardia: one CTG alarm, high priority, every reason in its evidence;
    the notices ask for nothing."""
    from stream.alarms.policy import AlarmPolicy
    from stream.sources.ctg_simulator import Scenario, simulate_ctg

    sim = simulate_ctg(Scenario("brady", duration_s=1800.0, bradycardia=(900.0, 1800.0)), seed=3)
    policy = AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 0}})
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-path")), WindowStore(redis, capacity_s=2400),
                 Cadence(), policy=policy)
    # on a minute of the labour clock: the simulated bradycardia sits at 100 bpm, FIGO's pathological limit,
    # and where the minutes fall decides whether its median reads 99.9 or 100.1
    patient, t0 = "pp-path", 60 * (time.time() // 60) - 1800
    for i, pkt in enumerate(packets(patient, t0, sim.fhr)):
        await p.on_record(pkt)
        if i % 15 == 0:
            await p.tick()
    await p.tick()
    alerts = await p.alerts.open_alerts()
    assert [a.kind for a in alerts] == ["ctg_alarm"]
    alarm = alerts[0]
    reasons = {r["kind"] for r in alarm.evidence["reasons"]}
    assert {"bradycardia", "ctg_pathological"} <= reasons, reasons
    assert alarm.severity_name == "emergency"  # high priority: escalates after 1 min unacknowledged
    assert all(r["sentence"] and r["rule"] and r["policy"] for r in alarm.evidence["reasons"])
    status = await p.status.read(patient)
    assert all(n.kind not in reasons or n.qualifying for n in status.notices)
    # notices never enter the alert store: nothing to acknowledge
    assert not any(a.kind in {n.kind for n in status.notices} for a in alerts)


async def test_a_restarted_pipeline_resumes_the_prolonged_deceleration_counter(pipeline) -> None:
    """The last analysis' baseline is kept with the status: a deceleration under way at a restart still
    alarms at 3 min (it used to wait for the next analysis, and a finished one is history by then)."""
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 1200
    fhr = np.full(4 * 900, 140.0)
    fhr[4 * 800:] = 95.0  # a deceleration from 800 s, 100 s of it before the "crash"
    for pkt in packets(patient, t0, fhr):
        await pipeline.on_record(pkt)
        if pkt.start_ts - t0 < 700 and int(pkt.start_ts - t0) % 15 == 0:
            await pipeline.tick()
    assert (await pipeline.status.read(patient)).baseline_bpm == pytest.approx(140, abs=3)
    fresh = Pipeline(pipeline.redis, pipeline.alerts, pipeline.windows, pipeline.cadence)
    more = np.full(4 * 120, 95.0)
    for pkt in packets(patient, t0 + 900, more):
        await fresh.on_record(pkt)
    alerts = await fresh.alerts.open_alerts()
    assert [a.kind for a in alerts] == ["ctg_alarm"]
    assert alerts[0].evidence["reasons"][0]["kind"] == "prolonged_deceleration"


async def test_missing_packets_are_an_interruption_not_signal_loss(pipeline) -> None:
    """A minute with no packets (monitor off, network or broker down) raises no signal-loss condition;
    a minute of FHR 0 from the monitor does."""
    quiet, lost = f"pp-{uuid.uuid4().hex[:6]}", f"pp-{uuid.uuid4().hex[:6]}"
    t0 = time.time() - 300
    fhr = np.full(4 * 180, 140.0)
    for i, pkt in enumerate(packets(quiet, t0, fhr)):
        if 60 <= i < 120:
            continue  # 60 s without packets
        await pipeline.on_record(pkt)
        assert "signal_loss" not in pipeline.patients[quiet].alarms.conditions, i
    assert (await pipeline.status.read(quiet)).notices == []
    fhr[4 * 60:4 * 120] = 0.0
    for pkt in packets(lost, t0, fhr)[:110]:  # FHR 0 from the monitor: the transducer lost the signal
        await pipeline.on_record(pkt)
    assert [n.kind for n in (await pipeline.status.read(lost)).notices] == ["signal_loss"]


class _FakeFalseSignalScorer:
    """Stands in for Triton's ctg_false_signal: calls seconds where the FHR sits on the maternal rate false."""

    models = ("ctg_false_signal",)
    deadline_s = 1.0
    available = True

    async def score(self, window: np.ndarray) -> dict:
        from models.serving.triton_client import ModelUnavailable, Scored

        if not self.available:
            return {"ctg_false_signal": ModelUnavailable("ctg_false_signal", "UNAVAILABLE: test")}
        on_mother = (window[:, 1] > 0) & (window[:, 3] > 0) & (np.abs(window[:, 4]) < 0.2)
        return {"ctg_false_signal": Scored(float(on_mother.mean()), on_mother.astype(np.float32), 0.5, "7")}

    async def score_many(self, windows: list[np.ndarray]) -> list[dict]:
        return [await self.score(w) for w in windows]


async def test_samples_the_false_signal_model_calls_false_are_left_out_and_drawn_and_alarmed(redis) -> None:
    """The model's verdict replaces the rules on the samples it judged: they leave the FIGO analysis, are drawn
    as not fetal, and raise the technical alarm whose rule names the model; while it is unavailable the
    rules judge and the evidence says so."""
    from stream.alarms.policy import AlarmPolicy
    from stream.worker.false_signal import FalseSignalJudge

    fake = _FakeFalseSignalScorer()
    judge = FalseSignalJudge(fake, interval_s=60.0)  # type: ignore[arg-type]
    policy = AlarmPolicy(overrides={"false_signal": {"qualify_s": 0}})
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-fs")), WindowStore(redis, capacity_s=2400),
                 Cadence(), policy=policy, false_signal=judge)
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 1200
    rng = np.random.default_rng(1)
    fhr = 140 + 3 * np.sin(np.arange(4 * 1200) / 40) + rng.normal(0, 1.5, 4 * 1200)
    mhr = 85 + rng.normal(0, 1.0, fhr.size)
    fhr[4 * 900 :] = mhr[4 * 900 :] + rng.normal(0, 1.0, 4 * 300)  # the last 5 min: the mother's rate
    for i in range(1200):
        pkt = CtgPacket(patient_id=patient, bed_id="bed-fs", device_id="m", start_ts=t0 + i, fhr_source="ultrasound",
                        fhr=[float(v) for v in fhr[4 * i : 4 * i + 4]], uc=[15.0] * 4,
                        mhr=[float(v) for v in mhr[4 * i : 4 * i + 4]])
        await p.on_record(pkt)
    await p.tick()  # first analysis (rules), then the model scores (a round beside the ticks)
    await p.wait_scoring()
    assert patient in judge.verdicts and p.window_of(patient).sensor == "ultrasound"
    # the verdict serves the next minute measured, whose window holds the judged seconds (and a minute more of
    # the mother's rate, which the model has not judged yet: the rules judge it)
    for i in range(1200, 1260):
        await p.on_record(CtgPacket(patient_id=patient, bed_id="bed-fs", device_id="m", start_ts=t0 + i,
                                    fhr_source="ultrasound", fhr=[float(v) for v in mhr[4 * i - 240: 4 * i - 236]],
                                    uc=[15.0] * 4, mhr=[float(v) for v in mhr[4 * i - 240: 4 * i - 236]]))
    await p.tick()  # analysis with the model's verdict
    status = await p.status.read(patient)
    model_marks = [m for m in status.not_fetal if m.kind == "false_signal"]
    assert model_marks and sum(m.end - m.start for m in model_marks) == pytest.approx(300, abs=30)
    assert all(m.start >= t0 + 890 for m in model_marks)
    assert not [m for m in status.not_fetal if m.kind == "maternal_hr_capture" and t0 + 900 <= m.start < t0 + 1190]
    alerts = await p.alerts.open_alerts()
    reasons = [r for a in alerts for r in a.evidence["reasons"] if r["kind"] == "false_signal"]
    assert reasons and "false-signal model ctg_false_signal v7" in reasons[0]["rule"]
    fake.available = False
    for i in range(1260, 1320):
        await p.on_record(CtgPacket(patient_id=patient, bed_id="bed-fs", device_id="m", start_ts=t0 + i,
                                    fhr=[140.0] * 4, uc=[15.0] * 4, mhr=[85.0] * 4))
    await p.tick()
    await p.wait_scoring()
    assert judge.evidence(patient)["judge"].startswith("rules")


class _HeldScorer(_FakeFalseSignalScorer):
    """A Triton that answers only when the test lets it (a slow batch on a CPU Triton)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.rounds = 0

    async def score_many(self, windows: list[np.ndarray]) -> list[dict]:
        self.rounds += 1
        await self.release.wait()
        return await super().score_many(windows)


async def test_the_ticks_go_on_while_triton_answers_one_model_round_at_a_time(redis) -> None:
    """A slow model round must not hold the FIGO cadence: the tick returns while Triton works, the next
    tick analyses again without starting a second round, and the verdicts arrive when Triton answers."""
    from stream.worker.false_signal import FalseSignalJudge

    held = _HeldScorer()
    judge = FalseSignalJudge(held, interval_s=60.0)  # type: ignore[arg-type]
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9), false_signal=judge)
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 700
    for pkt in packets(patient, t0, np.full(4 * 660, 140.0)):
        await p.on_record(pkt)
    await asyncio.wait_for(p.tick(), 5.0)  # returns although Triton has not answered
    assert not p.scoring_idle() and held.rounds == 1 and p.window_of(patient).last_analysis_t is not None
    p.window_of(patient).last_analysis_t = None
    judge.last_t.pop(patient)  # due again for the model as well
    await asyncio.wait_for(p.tick(), 5.0)
    assert p.window_of(patient).last_analysis_t is not None  # analysed while the round is still in flight
    assert held.rounds == 1 and patient not in judge.verdicts  # no second round on top of the first
    held.release.set()
    await asyncio.wait_for(p.wait_scoring(), 5.0)
    assert patient in judge.verdicts and p.scoring_idle()


class _HeldAnomalyScorer:
    """Triton's ctg_autoencoder, answering (far above its threshold) only when the test lets it."""

    models = ("ctg_autoencoder",)
    deadline_s = 1.0

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def score_many(self, windows: list[np.ndarray]) -> list[dict]:
        from models.serving.triton_client import Scored

        await self.release.wait()
        return [{"ctg_autoencoder": Scored(9.0, np.full(600, 9.0, np.float32), 1.0, "6")} for _ in windows]


async def test_a_model_round_that_straddles_a_rebalance_writes_nothing_for_the_patients_given_up(redis) -> None:
    """Partitions revoked while Triton answers: the round's results belong to windows this worker no longer
    keeps, so it neither keeps their false-signal verdicts nor writes their model evidence (the new owner
    scores them), whichever of the round's two requests the rebalance falls in; a round with nothing revoked
    does both."""
    from stream.worker.false_signal import FalseSignalJudge

    held_fs, held_ae = _HeldScorer(), _HeldAnomalyScorer()
    judge = FalseSignalJudge(held_fs, interval_s=60.0)  # type: ignore[arg-type]
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9), held_ae,  # type: ignore[arg-type]
                 false_signal=judge)
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 900
    for pkt in packets(patient, t0, np.full(4 * 660, 140.0)):
        await p.on_record(pkt)

    async def round_from(t_from: float, seconds: int) -> None:
        held_fs.release, held_ae.release = asyncio.Event(), asyncio.Event()
        for pkt in packets(patient, t_from, np.full(4 * seconds, 140.0)):  # after a rebalance: reloaded
            await p.on_record(pkt)
        await asyncio.wait_for(p.tick(), 5.0)
        assert not p.scoring_idle()

    async def until(condition) -> None:  # noqa: ANN001
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the round did not get there")

    await round_from(t0 + 660, 0)
    p.forget_all()  # the rebalance falls in the false-signal request
    held_fs.release.set()
    held_ae.release.set()
    await asyncio.wait_for(p.wait_scoring(), 5.0)
    assert patient not in judge.verdicts and (await p.status.read(patient)).model_evidence is None

    await round_from(t0 + 660, 60)
    held_fs.release.set()
    await until(lambda: patient in judge.verdicts)
    p.forget_all()  # the rebalance falls in the autoencoder's request
    held_ae.release.set()
    await asyncio.wait_for(p.wait_scoring(), 5.0)
    assert (await p.status.read(patient)).model_evidence is None

    await round_from(t0 + 720, 60)  # nothing revoked
    held_fs.release.set()
    held_ae.release.set()
    await asyncio.wait_for(p.wait_scoring(), 5.0)
    evidence = (await p.status.read(patient)).model_evidence
    assert patient in judge.verdicts and evidence is not None and evidence["ctg_autoencoder"]["score"] == 9.0


async def _due_for_analysis(redis, beds: int, analysis_budget_s: float,  # noqa: ANN001
                            refresh_concurrency: int = 1) -> tuple[Pipeline, list[str], float]:
    """A pipeline whose ``beds`` patients have 11 min of trace each: all due for their first analysis."""
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9, analysis_budget_s=analysis_budget_s,
                                                              refresh_concurrency=refresh_concurrency))
    t0 = time.time() - 700
    patients = [f"pb-{i}-{uuid.uuid4().hex[:4]}" for i in range(beds)]
    for pid in patients:
        for pkt in packets(pid, t0, np.full(4 * 660, 140.0)):
            await p.on_record(pkt)
    return p, patients, t0


async def test_a_tick_spends_at_most_its_budget_on_analyses_most_overdue_first(redis) -> None:
    """With no budget one analysis runs per tick (the most overdue); the others wait for the next tick,
    so a burst of due patients never holds the packets back for long. Every patient is analysed in turn."""
    p, patients, t0 = await _due_for_analysis(redis, 3, analysis_budget_s=0.0)
    p.window_of(patients[1]).last_analysis_t = t0 + 600.0  # analysed before: the others, never analysed, go first
    analysed = []
    intervals = REGISTRY.get_sample_value("ctgwatch_analysis_interval_seconds_count") or 0.0
    waited = REGISTRY.get_sample_value("ctgwatch_analysis_interval_seconds_sum") or 0.0
    for _ in range(3):
        before = {pid: p.window_of(pid).last_analysis_t for pid in patients}
        await p.tick()
        analysed.append([pid for pid in patients if p.window_of(pid).last_analysis_t != before[pid]])
    assert [len(a) for a in analysed] == [1, 1, 1]
    assert analysed[2] == [patients[1]] and {analysed[0][0], analysed[1][0]} == {patients[0], patients[2]}
    # the cadence metric the capacity bench reads: one interval (the patient analysed before), 60 s of recording
    assert REGISTRY.get_sample_value("ctgwatch_analysis_interval_seconds_count") == intervals + 1
    assert REGISTRY.get_sample_value("ctgwatch_analysis_interval_seconds_sum") == pytest.approx(waited + 60.0, abs=0.5)


async def test_refreshes_run_several_patients_at_a_time_within_the_budget(redis) -> None:
    """With refresh_concurrency N a tick takes the N most overdue together (their Redis waits overlap), and the
    budget is checked between such batches: with no budget, one batch per tick."""
    p, patients, _ = await _due_for_analysis(redis, 5, analysis_budget_s=0.0, refresh_concurrency=2)
    before = {pid: p.window_of(pid).last_analysis_t for pid in patients}
    await p.tick()
    assert sum(p.window_of(pid).last_analysis_t != before[pid] for pid in patients) == 2
    for _ in range(2):
        await p.tick()
    assert all(p.window_of(pid).last_analysis_t is not None for pid in patients)


async def test_analyses_in_a_helper_process_give_what_the_event_loop_gave(redis) -> None:
    """CTGWATCH_ANALYSIS_PROCESSES: the same analyses, marks, notices and alarm, only off the event loop."""
    from stream.alarms.policy import AlarmPolicy
    from stream.sources.ctg_simulator import Scenario, simulate_ctg
    from stream.worker.analysis_pool import AnalysisPool

    sim = simulate_ctg(Scenario("brady", duration_s=1500.0, bradycardia=(700.0, 1500.0)), seed=4)
    t0 = time.time() - 1500
    seen = {}
    for pooled in (False, True):
        pool = AnalysisPool(1) if pooled else None
        try:
            p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-pool-{pooled}")),
                         WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9),
                         policy=AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 0}}), analysis_pool=pool)
            patient = f"pp-pool-{pooled}-{uuid.uuid4().hex[:4]}"
            analyses = []
            for i, pkt in enumerate(packets(patient, t0, sim.fhr)):
                await p.on_record(pkt)
                if i % 60 == 0:
                    await p.tick()
                    s = await p.status.read(patient)
                    analyses.append((s.t_end, s.classification, tuple(s.reasons), s.baseline_bpm,
                                     tuple((m.kind, m.start, m.end) for m in s.events)))
            alerts = [a for a in await p.alerts.open_alerts() if a.patient_id == patient]
            assert pool is None or pool.running == 1  # the analyses did go to the helper
            seen[pooled] = (analyses, sorted((a.kind, a.severity_name,
                                              tuple(sorted(r["kind"] for r in a.evidence["reasons"])))
                                             for a in alerts))
        finally:
            if pool is not None:
                pool.close()
    assert seen[True] == seen[False]
    assert any(c == "pathological" for _, c, *_ in seen[True][0])  # the comparison covers a real finding
    assert seen[True][1] and seen[True][1][0][0] == "ctg_alarm"


async def test_a_batch_of_packets_finds_what_the_packets_one_at_a_time_find() -> None:
    """Packets of several patients handled as one batch (one Redis round trip) give the same windows, stored
    packets, notices and alarms as the same packets handled one at a time; duplicates inside a batch add nothing."""
    import fakeredis

    from stream.sources.ctg_simulator import Scenario, simulate_ctg

    t0 = time.time() - 1200
    traces = {
        "pq-brady": simulate_ctg(Scenario("brady", duration_s=900.0, bradycardia=(400.0, 900.0)), seed=4).fhr,
        "pq-loss": np.where((np.arange(4 * 900) // 4) % 300 > 200, 0.0, 140.0),
        "pq-calm": np.full(4 * 900, 140.0),
    }
    by_second = [pkt for i in range(900) for pid, fhr in traces.items() for pkt in [packets(pid, t0, fhr)[i]]]

    async def run(batched: bool) -> tuple:
        redis = fakeredis.FakeAsyncRedis()
        p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-batch")), WindowStore(redis, capacity_s=2400),
                     Cadence(forget_idle_s=1e9))
        calls = 0
        save = p.windows.save_packets

        async def counted(*args, **kwargs):  # noqa: ANN002, ANN003
            nonlocal calls
            calls += 1
            await save(*args, **kwargs)

        p.windows.save_packets = counted  # type: ignore[method-assign]
        observed = []
        observe = p._observe

        async def spy(patient_id, bed_id, source, t, findings):  # noqa: ANN001
            observed.append((patient_id, source, t, sorted((f.kind, f.start_s, f.end_s) for f in findings)))
            await observe(patient_id, bed_id, source, t, findings)

        p._observe = spy  # type: ignore[method-assign]
        if batched:
            for i in range(0, len(by_second), 21):  # 7 s of three beds, with the first packet delivered twice
                assert await p.on_ctg_batch(by_second[i:i + 21] + by_second[i:i + 1]) == []
                if i // 21 % 2:
                    await p.tick()
            assert calls == -(-len(by_second) // 21)  # one write per batch
        else:
            for i, pkt in enumerate(by_second):
                await p.on_record(pkt)
                if (i + 1) % 21 == 0 and i // 21 % 2:
                    await p.tick()
            assert calls == len(by_second)
        stored = {pid: await redis.zrange(f"ctgw:win:{pid}", 0, -1, withscores=True) for pid in traces}
        notices = {pid: [(n.kind, n.since) for n in (await p.status.read(pid)).notices] for pid in traces}
        alerts = sorted((a.patient_id, a.kind, sorted(r["kind"] for r in a.evidence["reasons"]))
                        for a in await p.alerts.open_alerts())
        await redis.aclose()
        return stored, notices, alerts, {pid: p.window_of(pid).fhr.copy() for pid in traces}, observed

    results = [await run(batched=False), await run(batched=True)]
    (stored1, notices1, alerts1, fhr1, seen1), (stored2, notices2, alerts2, fhr2, seen2) = results
    assert len(seen1) > len(by_second) and seen1 == seen2  # every observation, in the same order, at the same times
    assert stored1 == stored2 and notices1 == notices2 and alerts1 == alerts2
    assert all(np.array_equal(fhr1[pid], fhr2[pid]) for pid in traces)
    assert [a[:2] for a in alerts1] == [("pq-brady", "ctg_alarm")], alerts1
    assert "signal_loss" in [kind for kind, _ in notices1["pq-loss"]], notices1


async def test_a_packet_that_fails_in_a_batch_is_reported_alone_and_the_others_go_on(pipeline, monkeypatch) -> None:
    """A bug met by one packet (here, its fast rules) names that packet for the dead letter; the batch's other
    packets are stored and judged, and the failing one is stored too (nothing is lost)."""
    good, bad = f"pg-{uuid.uuid4().hex[:6]}", f"pb-{uuid.uuid4().hex[:6]}"
    t0 = time.time() - 100
    batch = [packets(good, t0, np.zeros(4 * 3))[0], packets(bad, t0, np.full(4 * 3, 140.0))[0],
             packets(good, t0, np.zeros(4 * 3))[1]]
    fast_rules = pipeline._fast_rules

    async def broken(window, new):  # noqa: ANN001
        if window.patient_id == bad:
            raise ValueError("a bug")
        await fast_rules(window, new)

    monkeypatch.setattr(pipeline, "_fast_rules", broken)
    failed = await pipeline.on_ctg_batch(batch)
    assert [(i, str(exc)) for i, exc in failed] == [(1, "a bug")]
    assert pipeline.window_of(good).fast.loss_samples == 8 and pipeline.window_of(bad).fhr.size == 4
    assert len(await pipeline.redis.zrange(f"ctgw:win:{bad}", 0, -1)) == 1
    with pytest.raises(ValueError, match="a bug"):  # one packet alone: the error is raised, as before batching
        await pipeline.on_ctg(packets(bad, t0, np.full(4 * 3, 140.0))[1])


async def test_the_analysis_budget_counts_the_analyses_own_time_not_the_packets_between_them(redis, monkeypatch) -> None:
    """A busy packet path (here: 30 ms of other work in the loop around each analysis) must not use up the
    analyses' budget; the analyses' own time does."""
    p, patients, _t0 = await _due_for_analysis(redis, 4, analysis_budget_s=0.05)
    own_s = 0.001

    async def analyse(window):  # noqa: ANN001
        await asyncio.sleep(0.03)  # the loop handles packets meanwhile
        window.last_analysis_t = window.t_end
        return own_s

    monkeypatch.setattr(p, "_analyse", analyse)
    await p.tick()
    assert all(p.window_of(pid).last_analysis_t is not None for pid in patients)  # 4 ms of analyses: all of them
    for pid in patients:
        p.window_of(pid).last_analysis_t = None
    own_s = 0.03
    await p.tick()
    assert sum(p.window_of(pid).last_analysis_t is not None for pid in patients) == 2  # 30 ms, 60 ms: budget spent


async def test_the_model_cadence_is_measured_per_scoring(redis) -> None:
    """The capacity bench reads the recording time between two scorings of a bed (60 s asked); a round
    that falls behind shows there."""
    from stream.worker.false_signal import FalseSignalJudge

    judge = FalseSignalJudge(_FakeFalseSignalScorer(), interval_s=60.0)  # type: ignore[arg-type]
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9), false_signal=judge)
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 800
    count = REGISTRY.get_sample_value("ctgwatch_model_interval_seconds_count", {"scoring": "false_signal"}) or 0.0
    total = REGISTRY.get_sample_value("ctgwatch_model_interval_seconds_sum", {"scoring": "false_signal"}) or 0.0
    trace = packets(patient, t0, np.full(4 * 735, 140.0))
    for pkt in trace[:660]:
        await p.on_record(pkt)
    await p.tick()
    await p.wait_scoring()
    for pkt in trace[660:]:  # 75 s more: due again after 60 s, scored at the tick after 75
        await p.on_record(pkt)
    await p.tick()
    await p.wait_scoring()
    assert REGISTRY.get_sample_value("ctgwatch_model_interval_seconds_count", {"scoring": "false_signal"}) == count + 1
    assert REGISTRY.get_sample_value("ctgwatch_model_interval_seconds_sum",
                                     {"scoring": "false_signal"}) == pytest.approx(total + 75.0, abs=0.5)


async def test_a_patient_moved_to_another_bed_takes_her_alarm_and_the_bed_is_held(redis) -> None:
    """Packets of a patient now from another bed: her open alarm is listed under the new bed, and the ward
    knows which beds a live patient holds (a second source is refused there)."""
    from detectors.findings import Finding, Severity

    ward = f"w-{uuid.uuid4().hex[:6]}"
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=ward)), WindowStore(redis, capacity_s=2400),
                 Cadence(forget_idle_s=1e9))
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 120
    trace = packets(patient, t0, np.full(4 * 120, 140.0))
    for pkt in trace[:60]:
        await p.on_record(pkt)
    _, aid = await p.alerts.apply(patient, "bed-p", Finding("ctg_alarm", Severity.URGENT, 0, 60, "rule", "sentence", {}))
    for pkt in trace[60:]:
        await p.on_record(pkt.model_copy(update={"bed_id": "bed-q"}))
    assert (await p.alerts.get(aid)).bed_id == "bed-q"
    assert await p.status.occupied_beds(ward, within_s=60) == {"bed-q": patient}
    assert await p.status.occupied_beds(ward, within_s=60, now=time.time() + 120) == {}


async def test_rebalances_leave_nothing_of_the_patients_given_up(redis) -> None:
    """forget_all used to drop four of the per-patient tables and keep the rest (model streaks and evidence,
    locks, the false-signal verdicts): memory for revoked patients grew with every rebalance."""
    from stream.worker.false_signal import FalseSignalJudge

    judge = FalseSignalJudge(_FakeFalseSignalScorer(), interval_s=60.0)  # type: ignore[arg-type]
    p = Pipeline(redis, AlertStore(redis, AlertHandling(ward_id=f"w-{uuid.uuid4().hex[:6]}")),
                 WindowStore(redis, capacity_s=2400), Cadence(forget_idle_s=1e9), _HeldAnomalyScorer(),  # type: ignore[arg-type]
                 false_signal=judge)
    t0 = time.time() - 700
    for round_no in range(100):
        patients = [f"rb-{round_no}-{k}" for k in range(3)]
        for patient in patients:
            for pkt in packets(patient, t0, np.full(4 * 5, 140.0)):
                await p.on_record(pkt)
            state = p.patients[patient]
            state.model_streak += 1  # what a model round leaves
            state.model_evidence = {"ctg_autoencoder": {}}
            state.autoencoder_scores.append(1.0)
            judge.last_t[patient] = t0
        assert set(patients) <= p.patients_held()
        p.forget_all()
        assert p.patients_held() == set() and p.patients == {} and not p.locks, p.patients_held()


async def test_a_gap_in_the_data_is_no_data_not_a_signal_loss_finding(pipeline) -> None:
    """Packets that never arrived (79 s: the worker and the broker were down) are missing samples, not FHR 0:
    neither the per-packet rules nor the FIGO analysis asks the midwife to check the transducer. The same
    79 s sent as FHR 0 by the monitor still is signal loss."""
    sent_as_zero = f"pp-{uuid.uuid4().hex[:6]}"
    never_sent = f"pp-{uuid.uuid4().hex[:6]}"
    t0 = 60 * (time.time() // 60) - 1200
    fhr = np.full(4 * 1200, 140.0) + np.tile(np.linspace(-6, 6, 40), 120)  # 20 min with variability
    fhr[4 * 1000:4 * 1079] = 0.0
    all_packets = packets(sent_as_zero, t0, fhr)
    gap = {i for i in range(len(all_packets)) if 1000 <= i < 1079}
    seen: dict[str, set[str]] = {sent_as_zero: set(), never_sent: set()}
    for i, pkt in enumerate(all_packets):
        await pipeline.on_record(pkt)
        if i not in gap:
            await pipeline.on_record(pkt.model_copy(update={"patient_id": never_sent}))
        if i % 15 == 0:
            await pipeline.tick()
            for patient, sentences in seen.items():
                sentences |= {n.sentence for n in (await pipeline.status.read(patient)).notices}
    await pipeline.tick()
    hole = pipeline.window_of(never_sent).span(t0 + 1000, t0 + 1079)[0]
    assert np.isnan(hole).all()
    assert any("check the transducer" in s for s in seen[sent_as_zero])
    assert not any("transducer" in s for s in seen[never_sent]), seen[never_sent]
    zero, missing = await pipeline.status.read(sent_as_zero), await pipeline.status.read(never_sent)
    assert missing.classification == zero.classification != "insufficient_signal"


async def test_a_late_packet_fills_the_hole_an_outage_left_and_a_clash_does_not(pipeline) -> None:
    """After an outage a producer may resend older packets after newer ones reached the worker: a packet whose
    samples never arrived is stored at its place in time (as history); one over samples already there is not
    (the worker dead-letters it as out of order)."""
    patient = f"pp-{uuid.uuid4().hex[:6]}"
    t0 = time.time() - 600
    sent = packets(patient, t0, np.full(4 * 120, 140.0))
    for i, pkt in enumerate(sent):
        if not 50 <= i < 60:  # 10 s never arrived
            await pipeline.on_record(pkt)
    assert np.isnan(pipeline.window_of(patient).span(t0 + 50, t0 + 60)[0]).all()
    assert await pipeline.fill_gap(sent[55])
    assert (pipeline.window_of(patient).span(t0 + 55, t0 + 56)[0] == 140.0).all()
    clash = sent[20].model_copy(update={"fhr": [150.0] * 4})
    assert not await pipeline.fill_gap(clash)  # its samples are there: a clash, not a late packet
    assert not await pipeline.fill_gap(sent[55])  # filled already
    fresh = Pipeline(pipeline.redis, pipeline.alerts, pipeline.windows, pipeline.cadence)
    reloaded = await fresh._window(patient, "bed-p")  # stored: a restarted worker has it
    assert (reloaded.span(t0 + 55, t0 + 56)[0] == 140.0).all() and np.isnan(reloaded.span(t0 + 50, t0 + 51)[0]).all()
