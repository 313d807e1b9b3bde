"""The whole-labour FIGO analysis (detectors/labour.py): every FIGO 2015 duration rule just under and just
over its limit, and the incremental state equal to the batch over the same history."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from detectors.labour import LabourFigo, MinuteRecord, analyse_labour, follow_labour, measure_through
from stream.sources.ctg_simulator import Scenario, _ramp_shape, simulate_ctg

FS = 4.0
START = 900.0  # every pattern starts at minute 15 of the record, on a minute boundary


def classes_by_minute(fhr: np.ndarray, uc: np.ndarray | None, mhr: np.ndarray | None = None) -> dict[int, tuple]:
    """Per minute of the record (its end, in minutes): the class, the reasons and the whole-labour features."""
    out = {}
    for end, state in follow_labour(fhr, uc, FS, mhr):
        a = state.analysis()
        assert a is not None
        out[int(round(end / 60))] = (a.classification, a.reasons, a.features)
    return out


def simulated(**episode: object) -> dict[int, tuple]:
    sim = simulate_ctg(Scenario("labour", duration_s=START + 60 * 60, **episode), seed=3)  # type: ignore[arg-type]
    return classes_by_minute(sim.fhr, sim.uc, sim.mhr)


def test_reduced_variability_is_pathological_after_50_min_not_before() -> None:
    by_minute = simulated(reduced_variability=(START, START + 3600))
    for minutes, label in ((49, "suspicious"), (51, "pathological")):
        cls, reasons, f = by_minute[15 + minutes]
        assert f.variability.reduced_s == minutes * 60  # the pattern's duration, measured over the labour
        assert cls == label
        assert any(r.startswith("reduced variability for") for r in reasons) == (label == "pathological")


def test_sinusoidal_pattern_is_pathological_after_30_min_not_before() -> None:
    by_minute = simulated(sinusoidal=(START, START + 3600))
    for minutes, label in ((29, "normal"), (31, "pathological")):
        cls, reasons, f = by_minute[15 + minutes]
        assert f.sinusoidal_s == minutes * 60
        assert cls == label
        assert any(r.startswith("sinusoidal pattern") for r in reasons) == (label == "pathological")


def saltatory(minutes: float, band: float = 36.0, seed: int = 0) -> np.ndarray:
    """FHR at 140 bpm with a fast irregular oscillation of ``band`` bpm peak to trough in every minute
    (too fast to make accelerations or decelerations, too wide and irregular to be sinusoidal)."""
    t = np.arange(int(minutes * 60 * FS)) / FS
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * (f / 60) * t + rng.uniform(0, 2 * np.pi)) for f in (7.0, 9.5, 12.5))
    return 140.0 + wave / np.percentile(np.abs(wave), 97.5) * band / 2


def test_increased_variability_is_pathological_after_30_min_not_before() -> None:
    fhr = np.concatenate([saltatory(START / 60, band=12.0), saltatory(45)])
    by_minute = classes_by_minute(fhr, np.full(fhr.size, 10.0))
    for minutes, label in ((29, "suspicious"), (31, "pathological")):
        cls, reasons, f = by_minute[15 + minutes]
        assert f.variability.increased_s == minutes * 60
        assert cls == label
        assert any(r.startswith("increased variability") for r in reasons) == (label == "pathological")


def _first_late(sim) -> float:
    return min(e.start_s for e in sim.events if e.kind == "late_deceleration")


@pytest.mark.parametrize(("reduced", "limit_min"), [(False, 30), (True, 20)])
def test_repetitive_late_decelerations_are_pathological_after_their_limit(reduced: bool, limit_min: int) -> None:
    """> 30 min of repetitive late decelerations (> 20 min with reduced variability), counted from the first."""
    spans = {"reduced_variability": (START, START + 3600)} if reduced else {}
    sim = simulate_ctg(Scenario("late", duration_s=START + 3600, decel_kind="late", decel_span=(START, START + 3600),
                                **spans), seed=3)  # type: ignore[arg-type]
    by_minute = classes_by_minute(sim.fhr, sim.uc, sim.mhr)
    first = _first_late(sim)
    for over, label in ((-1, "suspicious"), (+1, "pathological")):
        minute = int(np.floor((first + 60 * (limit_min + over)) / 60))  # the pattern is limit -1 / +1 min old
        cls, reasons, f = by_minute[minute]
        assert abs(f.repetitive_late_s - (60 * minute - first)) <= 15  # from the first late one's contraction
        assert cls == label, (minute, reasons)
        assert any(r.startswith("repetitive late/prolonged") for r in reasons) == (label == "pathological")


def background(minutes: float, base: float = 125.0, band: float = 12.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    osc = gaussian_filter1d(rng.normal(0, 1, int(minutes * 60 * FS)), sigma=6)
    return base + osc / np.percentile(np.abs(osc), 97.5) * band / 2


@pytest.mark.parametrize(("hold_s", "label"), [(255.0, "normal"), (267.0, "pathological")])
def test_a_prolonged_deceleration_below_80_is_pathological_after_5_min(hold_s: float, label: str) -> None:
    """FIGO 2015: one prolonged deceleration > 5 min is pathological; measured 4.9 min (294 s) and 5.1 min."""
    t = np.arange(int(40 * 60 * FS)) / FS
    fhr = background(40) - 55 * _ramp_shape(t, 1500.0, 20.0, hold_s, 30.0)  # nadir about 62 bpm
    analysis = analyse_labour(fhr, np.full(fhr.size, 10.0))
    assert analysis is not None
    prolonged = [d.excursion for d in analysis.decelerations if d.kind == "prolonged"]
    assert prolonged and prolonged[0].extreme_bpm < 80
    assert prolonged[0].duration == pytest.approx(294 if label == "normal" else 306, abs=3)
    assert analysis.classification == label
    assert any(r.startswith("prolonged deceleration") for r in analysis.reasons) == (label == "pathological")


def test_a_prolonged_deceleration_in_progress_counts_between_two_minutes() -> None:
    """The per-packet rules' deceleration in progress makes the class pathological as it passes 5 min."""
    fhr = background(30)
    state = LabourFigo()
    measure_through(state, fhr, np.full(fhr.size, 10.0), FS, None, 0.0, 30 * 60)
    assert state.analysis(ongoing_deceleration_s=290).classification == "normal"
    after = state.analysis(ongoing_deceleration_s=310)
    assert after.classification == "pathological" and "prolonged deceleration of 5.2 min" in after.reasons


def test_the_state_read_back_from_its_records_decides_what_the_uninterrupted_one_does() -> None:
    """A restarted worker reads the stored records (JSON) back and measures on: every later minute equals the
    batch over the same history, features and class."""
    sim = simulate_ctg(Scenario("sinus", duration_s=START + 2700, sinusoidal=(START, START + 2700),
                                decel_kind="variable", decel_span=(0, 600)), seed=5)
    batch = {end: (st.analysis().classification, st.analysis().reasons, st.analysis().features.sinusoidal_s)
             for end, st in follow_labour(sim.fhr, sim.uc, FS, sim.mhr)}
    state = LabourFigo()
    measure_through(state, sim.fhr, sim.uc, FS, sim.mhr, 0.0, 1500.0)
    stored = [json.dumps(r.to_dict()) for r in state.minutes]
    restarted = LabourFigo()
    restarted.restore([MinuteRecord.from_dict(json.loads(s)) for s in stored])
    assert restarted.analysis() is None  # the newest window is measured again with the next minute
    for end in np.arange(1560.0, START + 2700 + 1, 60.0):
        measure_through(restarted, sim.fhr, sim.uc, FS, sim.mhr, 0.0, end)
        a = restarted.analysis()
        assert (a.classification, a.reasons, a.features.sinusoidal_s) == batch[end]
    assert batch[START + 2700][0] == "pathological"


def test_durations_reach_back_no_further_than_the_history_kept() -> None:
    sim = simulate_ctg(Scenario("flat", duration_s=5400, reduced_variability=(0, 5400)), seed=3)
    capped = analyse_labour(sim.fhr, sim.uc, mhr=sim.mhr, history_s=3600)
    whole = analyse_labour(sim.fhr, sim.uc, mhr=sim.mhr)
    assert capped.features.variability.reduced_s == 3600 and whole.features.variability.reduced_s == 5400


def test_a_judged_minute_without_the_pattern_ends_it_and_unjudged_minutes_are_bridged() -> None:
    def rec(i: int, band: float | None) -> MinuteRecord:
        return MinuteRecord(60.0 * i, True, 1.0, band, None, 140.0)

    state = LabourFigo()
    state.minutes = [rec(0, 3.0), rec(1, 12.0), rec(2, 3.0), rec(3, None), rec(4, None), rec(5, 2.0), rec(6, None)]
    reduced = state.episode(lambda m: None if m.band is None else m.band < 5)
    assert [m.t for m in reduced] == [300.0, 120.0]  # minutes 5 and 2; 3, 4 and 6 bridged, minute 1 ends it
    state.minutes = [rec(0, 3.0), *[rec(i, None) for i in range(1, 7)], rec(7, 3.0)]
    assert len(state.episode(lambda m: None if m.band is None else m.band < 5)) == 1  # 6 min unjudged: too long
