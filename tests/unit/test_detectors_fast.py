"""Per-packet fast rules: incremental, and agreeing with the window analysis on constructed traces."""

from __future__ import annotations

import numpy as np

from detectors.fast import FastRuleState
from detectors.findings import Severity


def feed(state: FastRuleState, fhr: np.ndarray, baseline: float | None, packet: int = 4):
    out = []
    for i in range(0, len(fhr), packet):
        out = state.update(fhr[i : i + packet], i / 4.0, baseline)
    return out


def test_normal_trace_raises_nothing() -> None:
    rng = np.random.default_rng(0)
    assert feed(FastRuleState(), 140 + rng.normal(0, 3, 4 * 1200), 140.0) == []


def test_signal_loss_in_progress_after_15_s() -> None:
    fhr = np.full(4 * 120, 140.0)
    fhr[-4 * 14 :] = 0.0
    assert feed(FastRuleState(), fhr, 140.0) == []
    fhr[-4 * 16 :] = 0.0
    (finding,) = feed(FastRuleState(), fhr, 140.0)
    assert finding.kind == "signal_loss" and finding.values["duration_s"] == 16.0
    assert finding.start_s == 120 - 16


def test_prolonged_deceleration_in_progress_with_a_short_loss() -> None:
    fhr = np.full(4 * 600, 140.0)
    fhr[4 * 300 :] = 95.0  # 5 min at 95 after 5 min at 140
    fhr[4 * 400 : 4 * 405] = 0.0  # 5 s of loss inside the deceleration is tolerated
    findings = feed(FastRuleState(), fhr, 140.0)
    (prolonged,) = [f for f in findings if f.kind == "prolonged_deceleration"]
    assert prolonged.start_s == 300 and prolonged.values["nadir_bpm"] == 95.0
    assert prolonged.severity == Severity.URGENT
    assert not feed(FastRuleState(), fhr, None)  # no baseline yet: the rule waits
    deep = np.full(4 * 700, 140.0)
    deep[4 * 300 :] = 75.0  # > 5 min below 80 bpm: acute hypoxia (FIGO 2015)
    (acute,) = [f for f in feed(FastRuleState(), deep, 140.0) if f.kind == "prolonged_deceleration"]
    assert acute.severity == Severity.EMERGENCY


def test_bradycardia_after_ten_minutes_below_110() -> None:
    fhr = np.full(4 * 700, 100.0)
    kinds = {f.kind for f in feed(FastRuleState(), fhr, 100.0)}
    assert kinds == {"bradycardia"}  # at its own baseline it is bradycardia, not a deceleration
    assert not feed(FastRuleState(), np.full(4 * 590, 100.0), 100.0)


def test_recovery_resets_the_runs() -> None:
    state = FastRuleState()
    fhr = np.concatenate([np.full(4 * 200, 100.0), np.full(4 * 20, 140.0)])
    assert feed(state, fhr, 140.0) == []
    assert state.below_samples == 0 and state.brady_samples == 0
