"""The worker's FIGO class over the whole labour (on fakeredis): the duration rules met through the pipeline,
the class refreshed every 15 s, the state stored per minute and read back by a restarted worker, and the
class equal to the batch analysis of the same history."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from detectors.labour import analyse_labour
from stream.alarms.handling import AlertHandling
from stream.core.schemas import CtgPacket
from stream.sources.ctg_simulator import Scenario, _ramp_shape, simulate_ctg
from stream.state.alerts import AlertStore
from stream.state.labour_figo import LabourFigoStore
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline

T0 = 1_700_000_040.0  # on a minute of the labour clock
START = 900.0


def pipeline_on(redis) -> Pipeline:
    return Pipeline(redis, AlertStore(redis, AlertHandling(ward_id="w-labour")), WindowStore(redis, capacity_s=3600),
                    Cadence(forget_idle_s=1e9))


async def feed(p: Pipeline, patient: str, fhr: np.ndarray, uc: np.ndarray, first_s: int, last_s: int) -> None:
    """1-s packets of seconds [first_s, last_s), a tick after each (the worker's timer: due every 15 s)."""
    for s in range(first_s, last_s):
        await p.on_record(CtgPacket(patient_id=patient, bed_id="bed-l", device_id="m", start_ts=T0 + s,
                                    fhr=[float(v) for v in fhr[4 * s:4 * s + 4]], uc=[float(v) for v in uc[4 * s:4 * s + 4]]))
        if s % 15 == 14:
            await p.tick()


@pytest.mark.parametrize(("episode", "minutes", "label", "reason"), [
    ("reduced_variability", 49, "suspicious", None),
    ("reduced_variability", 51, "pathological", "reduced variability for 51 min"),
    ("sinusoidal", 29, "normal", None),
    ("sinusoidal", 31, "pathological", "sinusoidal pattern for"),
])
async def test_duration_rules_through_the_pipeline(redis, episode: str, minutes: int, label: str,
                                                   reason: str | None) -> None:
    duration = int(START + 60 * minutes)
    sim = simulate_ctg(Scenario("p", duration_s=START + 4800, **{episode: (START, START + 4800)}), seed=3)
    patient = f"pl-{uuid.uuid4().hex[:6]}"
    p = pipeline_on(redis)
    await feed(p, patient, sim.fhr, sim.uc, 0, duration)
    status = await p.status.read(patient)
    assert status.classification == label
    assert reason is None or any(r.startswith(reason) for r in status.reasons)
    if label == "pathological":  # held 10 min (the policy's qualification), the CTG alarm names the rule
        await feed(p, patient, sim.fhr, sim.uc, duration, duration + 660)
    reasons = [r for a in await p.alerts.open_alerts() if a.patient_id == patient and a.kind == "ctg_alarm"
               for r in a.evidence["reasons"]]
    pathological = [r for r in reasons if r["kind"] == "ctg_pathological"]
    assert bool(pathological) == (label == "pathological")
    assert reason is None or reason.split(" for")[0] in pathological[0]["sentence"]


def _trace(rule: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The detectors tests' trace of one rule (tests/unit/test_detectors_labour.py), and when the pattern began."""
    from tests.unit.test_detectors_labour import background, saltatory

    if rule == "increased":
        fhr = np.concatenate([saltatory(START / 60, band=12.0), saltatory(45)])
        return fhr, np.full(fhr.size, 10.0), START
    if rule.startswith("late"):
        spans = {"reduced_variability": (START, START + 3600)} if rule == "late_reduced" else {}
        sim = simulate_ctg(Scenario("late", duration_s=START + 3600, decel_kind="late",
                                    decel_span=(START, START + 3600), **spans), seed=3)  # type: ignore[arg-type]
        return sim.fhr, sim.uc, min(e.start_s for e in sim.events if e.kind == "late_deceleration")
    t = np.arange(int(40 * 60 * 4)) / 4
    fhr = background(40) - 55 * _ramp_shape(t, 1500.0, 20.0, {"prolonged_4.9": 255.0, "prolonged_5.1": 267.0}[rule], 30.0)
    return fhr, np.full(fhr.size, 10.0), 1500.0


@pytest.mark.parametrize(("rule", "minutes", "label", "reason"), [
    ("increased", 29, "suspicious", None),
    ("increased", 31, "pathological", "increased variability for"),
    ("late", 29, "suspicious", None),
    ("late", 31, "pathological", "repetitive late/prolonged decelerations over"),
    ("late_reduced", 19, "suspicious", None),
    ("late_reduced", 21, "pathological", "repetitive late/prolonged decelerations over"),
    ("prolonged_4.9", None, "normal", None),
    ("prolonged_5.1", None, "pathological", "prolonged deceleration of 5.1 min"),
])
async def test_the_other_duration_rules_through_the_pipeline(redis, rule: str, minutes: int | None, label: str,
                                                             reason: str | None) -> None:
    """Increased variability 29/31 min, repetitive late decelerations 29/31 (19/21 with reduced variability,
    counted from the first late one), a prolonged deceleration below 80 bpm of 4.9/5.1 min (the class 10 min
    after it): the class FIGO says, through the worker."""
    fhr, uc, began = _trace(rule)
    end = fhr.size // 4 if minutes is None else int(60 * np.floor((began + 60 * minutes) / 60))
    patient = f"po-{uuid.uuid4().hex[:6]}"
    p = pipeline_on(redis)
    await feed(p, patient, fhr, uc, 0, end)
    status = await p.status.read(patient)
    assert status.classification == label, status.reasons
    assert reason is None or any(r.startswith(reason) for r in status.reasons), status.reasons


async def test_a_restarted_worker_reads_the_labour_back_and_agrees_with_the_batch(redis) -> None:
    """Kill the worker at minute 30 of a sinusoidal labour; the next one reads the stored minutes back, and at
    minute 50 its class and reasons equal the batch analysis of the whole history; the refresh runs every 15 s."""
    sim = simulate_ctg(Scenario("sin", duration_s=3000, sinusoidal=(START, 3000)), seed=4)
    patient = f"pr-{uuid.uuid4().hex[:6]}"
    first = pipeline_on(redis)
    await feed(first, patient, sim.fhr, sim.uc, 0, 1800)
    stored = await LabourFigoStore(redis, keep_s=4 * 3600).load(patient)
    assert len(stored) == 30 and stored[-1].end == T0 + 1800  # one record a minute since the labour began
    second = pipeline_on(redis)  # a fresh worker: nothing in memory
    await feed(second, patient, sim.fhr, sim.uc, 1800, 3000)
    status = await second.status.read(patient)
    batch = analyse_labour(sim.fhr, sim.uc, t0=T0)
    assert batch is not None
    assert (status.classification, status.reasons) == (batch.classification, batch.reasons)
    assert status.classification == "pathological"
    assert second.patients[patient].figo.measured_until == T0 + 3000
    assert T0 + 3000 - 15 <= second.window_of(patient).last_analysis_t <= T0 + 3000  # refreshed every 15 s
