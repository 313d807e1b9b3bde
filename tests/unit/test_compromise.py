"""The compromise risk: its inputs from the whole-labour analysis, the stacker, its alarm finding and reasons,
the cross-fitting's out-of-fold guarantee and the operating-point rule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from detectors.findings import Severity
from detectors.labour import analyse_labour
from models.serving.compromise import INPUT_NAMES, OUTCOMES, Stacker, risk_finding, risk_inputs
from stream.sources.ctg_simulator import Scenario, simulate_ctg

LSTM, LATE = INPUT_NAMES.index("lstm"), INPUT_NAMES.index("late_30min")


def _stacker(**thresholds: float) -> Stacker:
    """A stacker that reads the LSTM (log-odds, weight 1) and late decelerations (weight 1 per standard deviation)."""
    n = len(INPUT_NAMES)
    w = np.zeros(n)
    w[LSTM], w[LATE] = 1.0, 1.0
    center, scale = np.zeros(n), np.ones(n)
    center[LSTM] = math.log(0.05 / 0.95)
    reference = np.zeros(n)
    reference[LSTM] = 0.05
    return Stacker(center=center, scale=scale, weights={o: w.copy() for o in OUTCOMES},
                   intercepts={o: math.log(0.05 / 0.95) for o in OUTCOMES}, reference=reference,
                   thresholds=dict(thresholds), risk_grid=[0.0, 0.1, 0.2, 0.5], normal_share_above=[1.0, 0.2, 0.05, 0.01],
                   version="test")


def test_risk_inputs_read_the_whole_labour_analysis_and_leave_missing_ones_missing() -> None:
    sim = simulate_ctg(Scenario("late", duration_s=3600.0, decel_kind="late", decel_span=(300.0, 3600.0)), seed=3)
    analysis = analyse_labour(sim.fhr, sim.uc, fs=sim.fs)
    x = dict(zip(INPUT_NAMES, risk_inputs(analysis, 0.3, [1.0, 2.0, 3.0])))
    assert x["lstm"] == 0.3 and x["autoencoder"] == pytest.approx(np.quantile([1.0, 2.0, 3.0], 0.9))
    assert x["late_30min"] >= 3 and x["repetitive_late_min"] > 0 and x["figo_class"] == 2.0
    nothing = risk_inputs(None, None, [])
    assert np.isnan(nothing).all()


def test_a_missing_input_adds_nothing_and_the_weights_round_trip() -> None:
    s = _stacker()
    x = np.full(len(INPUT_NAMES), np.nan)
    base = s.predict(x)["ph_below_7_05"]
    assert base == pytest.approx(0.05)  # every input at its centre: the intercept
    x[LSTM] = 0.5
    assert s.predict(x)["ph_below_7_05"] > base
    again = Stacker.from_dict(s.to_dict())
    assert again.predict(x)["ph_below_7_05"] == pytest.approx(s.predict(x)["ph_below_7_05"])
    other = s.to_dict() | {"inputs": ["lstm"]}
    with pytest.raises(ValueError, match="inputs"):
        Stacker.from_dict(other)


def test_the_finding_names_the_risk_the_reference_and_what_raised_it() -> None:
    s = _stacker(t1=0.2, t2=0.6)
    x = np.full(len(INPUT_NAMES), np.nan)
    x[LSTM], x[LATE] = 0.04, 0.0
    risks, finding = risk_finding(s, x, 1200.0)
    assert finding is None and risks["ph_below_7_05"] < 0.2
    x[LATE] = 3.0
    risks, finding = risk_finding(s, x, 1200.0)
    assert finding is not None and finding.kind == "compromise_risk" and finding.severity == Severity.ADVISORY
    assert "late decelerations in the last 30 min: 3" in finding.sentence
    assert "of normal-outcome labours ever reach this" in finding.sentence
    assert finding.values["reasons"] and finding.values["threshold"] == 0.2
    x[LSTM] = 0.5
    _, finding = risk_finding(s, x, 1260.0)
    assert finding is not None and finding.severity == Severity.EMERGENCY and finding.values["threshold"] == 0.6


def test_cross_fitting_never_scores_a_record_with_a_model_that_saw_it(monkeypatch) -> None:
    """Each training record's model inputs come from the inner fold's models that did not train on it; the
    scored records' from every inner fold's, none of which saw them."""
    import models.training.compromise as ct

    series = [SimpleNamespace(record_id=str(i), ph=7.0 if i % 5 == 0 else 7.3, normal_outcome=i % 5 != 0,
                              times=np.array([600.0, 660.0]), figo=np.full((2, len(INPUT_NAMES)), np.nan))
              for i in range(40)]
    seen = lambda fitted: fitted  # noqa: E731

    monkeypatch.setattr(ct, "fit_lstm", lambda train, cfg, seed: {s.record_id for s in train})
    monkeypatch.setattr(ct, "fit_autoencoder", lambda train, cfg, seed: {s.record_id for s in train})
    monkeypatch.setattr(ct, "lstm_risk", lambda ids, target: [np.full(2, float(s.record_id in seen(ids))) for s in target])
    monkeypatch.setattr(ct, "autoencoder_feature",
                        lambda ids, target: [np.full(2, float(s.record_id in seen(ids))) for s in target])
    train, score = np.arange(0, 32), np.arange(32, 40)
    train_x, score_x = ct.cross_fitted_inputs(series, train, score, ct.CompromiseConfig(), seed=1)
    assert set(train_x) == set(map(int, train)) and set(score_x) == set(map(int, score))
    for x in [*train_x.values(), *score_x.values()]:
        assert (x[:, ct.LSTM_COL] == 0).all() and (x[:, ct.AE_COL] == 0).all()


def test_the_operating_point_keeps_within_five_points_of_todays_policy_on_the_tuning_half() -> None:
    from stream.evaluation.risk_alarm import Labour, choose_operating_point, first_alarm

    times = np.arange(600.0, 600.0 + 60 * 60, 60.0)
    rng = np.random.default_rng(0)
    labours = []
    for i in range(200):
        acid = i < 20
        level = rng.uniform(0.15, 0.5) if acid else rng.uniform(0.0, 0.3)
        labours.append(Labour(str(i), not acid, acid, times, np.full(times.size, level), policy_alarmed=i % 10 == 0))
    chosen = choose_operating_point(labours)
    normal = [x for x in labours if x.normal_outcome]
    both = np.mean([first_alarm(x.times, x.risk, chosen["t1"], int(chosen["qualify_min"])) is not None or x.policy_alarmed
                    for x in normal])
    assert both - np.mean([x.policy_alarmed for x in normal]) <= 0.05 + 1e-9
    assert chosen["t2"] > chosen["t1"]


def test_an_alarm_needs_the_risk_held_for_the_qualification_time() -> None:
    """By the policy's tracker, as the stream: a short crossing ends (after the row's clear time) before it
    qualifies; a risk held from minute 5 alarms 10 min later, through a one-minute dip."""
    from stream.evaluation.risk_alarm import first_alarm

    times = np.arange(0.0, 3600.0, 60.0)
    risk = np.zeros(times.size)
    risk[5:8] = 0.5  # 3 minutes above, then gone: 3 + 5 min of clear time < 10
    assert first_alarm(times, risk, 0.3, 10) is None
    risk[5:40] = 0.5
    risk[9] = 0.1  # a dip shorter than the clear time does not restart the qualification
    assert first_alarm(times, risk, 0.3, 10) == times[15]


def test_the_lstm_hour_mean_averages_the_last_hour_of_per_minute_risks() -> None:
    import models.training.compromise as ct

    p = np.linspace(0.0, 1.0, 90)
    series = [SimpleNamespace(figo=np.full((90, len(INPUT_NAMES)), np.nan))]
    x = ct.with_models(series, [p], [np.ones(90)])[0]
    mean = x[:, INPUT_NAMES.index("lstm_hour_mean")]
    assert mean[0] == p[0] and mean[9] == pytest.approx(p[:10].mean())
    assert mean[89] == pytest.approx(p[30:90].mean()) and (x[:, LSTM] == p).all()
