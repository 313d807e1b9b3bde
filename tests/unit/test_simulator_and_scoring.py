"""The simulator produces the statistics it is asked for, with ground truth;
event scoring counts what it should."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.scoring import merge_intervals, score_events
from detectors.variability import segment_bands
from stream.evaluation.simulated import score_record
from stream.sources.ctg_simulator import FS, Scenario, simulate_ctg, standard_scenarios


def test_deterministic_for_a_seed() -> None:
    a = simulate_ctg(Scenario("normal", duration_s=600), seed=7)
    b = simulate_ctg(Scenario("normal", duration_s=600), seed=7)
    c = simulate_ctg(Scenario("normal", duration_s=600), seed=8)
    assert np.array_equal(a.fhr, b.fhr) and a.events == b.events
    assert not np.array_equal(a.fhr, c.fhr)


@pytest.mark.parametrize("baseline,band", [(140.0, 14.0), (125.0, 8.0), (150.0, 20.0)])
def test_baseline_and_variability_match_the_scenario(baseline: float, band: float) -> None:
    sim = simulate_ctg(Scenario("x", duration_s=1800, baseline_bpm=baseline, variability_bpm=band,
                                accelerations_per_10min=0.0, contraction_interval_s=(1e9, 1e9)), seed=3)
    assert abs(np.median(sim.fhr) - baseline) <= 3.0
    bands = segment_bands(sim.fhr, np.ones(sim.fhr.size, bool), FS, 60.0)
    assert band * 0.7 <= np.median(bands) <= band * 1.3


def test_contractions_every_two_to_four_minutes() -> None:
    sim = simulate_ctg(Scenario("x", duration_s=3600), seed=1)
    onsets = np.array([c[0] for c in sim.contractions])
    assert 120 <= np.median(np.diff(onsets)) <= 240
    assert sim.uc.max() <= 100 and sim.uc.min() >= 0


def test_decelerations_are_where_the_ground_truth_says() -> None:
    sim = simulate_ctg(Scenario("late", duration_s=1800, decel_kind="late", decel_span=(0, 1800),
                                accelerations_per_10min=0), seed=2)
    late = [e for e in sim.events if e.kind == "late_deceleration"]
    assert len(late) == len(sim.contractions)
    t = np.arange(sim.fhr.size) / FS
    for e in late:
        inside = (t >= e.start_s) & (t < e.end_s)
        assert sim.fhr[inside].min() <= np.median(sim.fhr) - 15
        onset = next(c for c in sim.contractions if c[0] <= e.start_s <= c[2])
        assert e.start_s - onset[0] > 20  # FIGO: late starts > 20 s after contraction onset


def test_artefacts_are_in_the_signal_and_the_ground_truth() -> None:
    sc = next(s for s in standard_scenarios() if s.name == "artefacts")
    sim = simulate_ctg(sc, seed=0)
    t = np.arange(sim.fhr.size) / FS
    for a, b in sc.signal_loss:
        assert (sim.fhr[(t >= a) & (t < b)] == 0).all()
    for a, b in sc.maternal_capture:
        m = (t >= a) & (t < b)
        assert np.median(np.abs(sim.fhr[m] - sim.mhr[m])) < 1.0
    kinds = {e.kind for e in sim.events}
    assert {"signal_loss", "maternal_hr_capture", "halving_doubling"} <= kinds


def test_scoring_counts_matches_misses_and_false_alarms() -> None:
    s = score_events([(0, 10), (20, 30), (50, 60)], [(5, 12), (21, 22), (25, 28), (80, 90)])
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 2, 1)
    assert s.precision == 0.5 and s.recall == pytest.approx(2 / 3)
    assert merge_intervals([(0, 10), (12, 20), (40, 50)], gap_s=5) == [(0, 20), (40, 50)]


def test_prolonged_scenario_scores_perfectly_on_its_events() -> None:
    sc = next(s for s in standard_scenarios() if s.name == "prolonged_deceleration")
    scores, confusion = score_record(simulate_ctg(sc, seed=0))
    assert scores["deceleration"].recall == 1.0
    assert scores["signal_loss"].false_positives == 0


def test_recording_intervals_resample_whole_recordings() -> None:
    """Recordings alike give a point interval; one recording holding all the false positives widens the
    specificity interval far beyond what its samples alone would suggest."""
    from detectors.scoring import SampleConfusion, recording_intervals

    alike = [SampleConfusion(tp=90, fn=10, fp=5, tn=995) for _ in range(20)]
    same = recording_intervals(alike)
    assert same["sensitivity"] == (0.9, 0.9) and same["specificity"] == (0.995, 0.995)
    uneven = [SampleConfusion(tp=90, fn=10, fp=0, tn=1000) for _ in range(19)] + [SampleConfusion(tp=90, fn=10, fp=200, tn=800)]
    low, high = recording_intervals(uneven)["specificity"]
    pooled = 1 - 200 / 20000
    assert low < pooled < high and low < 0.985 and high == 1.0
    assert recording_intervals(uneven) == recording_intervals(uneven)  # seeded
    assert recording_intervals([]) == {}


def test_a_paired_change_is_resampled_on_the_same_recordings_for_both_judges() -> None:
    """Two judges of the same recordings: a change confined to the one recording that holds the false
    positives is certain in sign, although each judge's own interval is wide; the same judge twice changes
    nothing; different recordings cannot be paired."""
    from detectors.scoring import SampleConfusion, recording_change_intervals, recording_intervals

    before = [SampleConfusion(tp=90, fn=10, fp=0, tn=1000) for _ in range(19)] + [SampleConfusion(tp=90, fn=10, fp=200, tn=800)]
    after = before[:19] + [SampleConfusion(tp=90, fn=10, fp=100, tn=900)]  # half the false positives gone
    low, high = recording_change_intervals(before, after)["specificity"]
    assert 0 <= low < 100 / 20000 < high  # never worse, and the pooled change (0.005) inside
    own_low, own_high = recording_intervals(after)["specificity"]
    assert high - low < own_high - own_low
    assert set(recording_change_intervals(before, before).values()) == {(0.0, 0.0)}
    with pytest.raises(ValueError):
        recording_change_intervals(before, after[:-1])
    assert recording_change_intervals([], []) == {}


@pytest.mark.parametrize("duration", [60.0, 120.0, 179.0, 180.0, 181.0, 400.0])
def test_every_duration_the_command_accepts_simulates(duration: float) -> None:
    """``ctgwatch simulate --duration`` accepts 60 s and more; short records used to fail placing accelerations."""
    from stream.sources.ctg_simulator import Scenario, simulate_ctg

    sim = simulate_ctg(Scenario("normal", duration_s=duration, accelerations_per_10min=10.0), seed=1)
    assert sim.fhr.size == int(duration * sim.fs)
