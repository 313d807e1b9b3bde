"""MEOWS triggers and trends (Singh et al. 2012 chart, docs/CLINICAL.md)."""

from __future__ import annotations

import dataclasses

import pytest

from detectors.meows import VitalsObservation, score_observation, vitals_trend
from detectors.thresholds import Band, MeowsChart


def obs(**kw) -> VitalsObservation:  # type: ignore[no-untyped-def]
    base = dict(t=0.0, heart_rate=80, systolic_bp=120, diastolic_bp=75, respiratory_rate=16, spo2=98, temperature_c=36.8)
    base.update(kw)
    return VitalsObservation(**base)


def test_normal_observation_has_no_trigger() -> None:
    r = score_observation(obs())
    assert r.score == (0, 0) and not r.review and not r.findings


@pytest.mark.parametrize(
    "field,value,colour",
    [
        ("temperature_c", 34.5, "red"), ("temperature_c", 38.5, "red"), ("temperature_c", 35.5, "yellow"),
        ("systolic_bp", 85, "red"), ("systolic_bp", 165, "red"), ("systolic_bp", 155, "yellow"), ("systolic_bp", 95, "yellow"),
        ("diastolic_bp", 105, "red"), ("diastolic_bp", 95, "yellow"),
        ("heart_rate", 125, "red"), ("heart_rate", 35, "red"), ("heart_rate", 110, "yellow"), ("heart_rate", 45, "yellow"),
        ("respiratory_rate", 8, "red"), ("respiratory_rate", 32, "red"), ("respiratory_rate", 25, "yellow"),
        ("spo2", 93, "red"), ("avpu", "V", "yellow"), ("avpu", "P", "red"), ("avpu", "U", "red"),
    ],
)
def test_single_parameter_triggers(field: str, value, colour: str) -> None:  # type: ignore[no-untyped-def]
    r = score_observation(obs(**{field: value}))
    assert (field in r.red) == (colour == "red")
    assert (field in r.yellow) == (colour == "yellow")
    assert r.review == (colour == "red")


def test_one_red_or_two_yellow_call_for_review() -> None:
    one_yellow = score_observation(obs(heart_rate=105))
    assert not one_yellow.review and one_yellow.findings[0].kind == "meows_yellow"
    two_yellow = score_observation(obs(heart_rate=105, respiratory_rate=24))
    assert two_yellow.review
    f = two_yellow.findings[0]
    assert f.kind == "meows_trigger" and "heart rate 105" in f.sentence and "respiratory rate 24" in f.sentence


def test_boundaries_follow_the_chart() -> None:
    assert "heart_rate" in score_observation(obs(heart_rate=120)).yellow
    assert "heart_rate" in score_observation(obs(heart_rate=120.5)).red
    assert "systolic_bp" in score_observation(obs(systolic_bp=90)).yellow
    assert "spo2" not in score_observation(obs(spo2=95)).red


def test_chart_is_configurable() -> None:
    chart = MeowsChart()
    params = dict(chart.parameters)
    params["heart_rate"] = dataclasses.replace(params["heart_rate"], red=(Band(130, float("inf")),), yellow=())
    local = MeowsChart(parameters=params)
    assert score_observation(obs(heart_rate=125), local).score == (0, 0)
    assert score_observation(obs(heart_rate=135), local).review


def test_missing_values_are_not_triggers() -> None:
    r = score_observation(VitalsObservation(t=0, heart_rate=None, spo2=float("nan")))
    assert r.score == (0, 0)


def test_rising_heart_rate_with_falling_pressure_is_a_trend() -> None:
    history = [obs(t=i * 600.0, heart_rate=85 + 6 * i, systolic_bp=120 - 6 * i) for i in range(6)]
    kinds = [f.kind for f in vitals_trend(history)]
    assert "maternal_deterioration_trend" in kinds
    assert "shock_index" in kinds  # HR 115 / SBP 90 = 1.28 at the last observation
    stable = [obs(t=i * 600.0) for i in range(6)]
    assert vitals_trend(stable) == []


def test_shock_index() -> None:
    f = vitals_trend([obs(heart_rate=110, systolic_bp=100)])
    assert [x.kind for x in f] == ["shock_index"] and f[0].values["shock_index"] == pytest.approx(1.1)
