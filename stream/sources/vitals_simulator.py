"""Synthetic maternal vital signs with deterioration scenarios and ground truth.

Each scenario starts from normal labour values and, over its episode, moves
the vital signs the way the condition does (values from the obstetric
early-warning literature the MEOWS chart in ``detectors/thresholds.py``
cites; levels are chosen to cross that chart's red triggers so that the
ground truth is unambiguous):

- ``preeclampsia``: severe hypertension, systolic > 160 and diastolic > 110 mmHg
  (NICE NG133 severe hypertension 160/110);
- ``sepsis``: fever > 38 °C, tachycardia > 120/min, tachypnoea > 24/min;
- ``haemorrhage``: heart rate rising, systolic BP falling, shock index
  (HR / SBP) above 0.9 (Nathan et al. 2015);
- ``hypoxaemia``: SpO2 falling below 95 % (to ~89 %), respiratory rate rising.

Observations are taken every ``interval_s`` (a wearable or an automatic
cuff; charted observations in labour are every 15-60 min). Pure numpy and
deterministic for a seed; publishing lives in :mod:`stream.sources.ward`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.sources.ctg_simulator import GroundTruthEvent

#: Normal labour values: (mean, per-observation noise SD).
NORMAL = {
    "heart_rate": (82.0, 4.0),
    "systolic_bp": (116.0, 5.0),
    "diastolic_bp": (72.0, 4.0),
    "respiratory_rate": (16.0, 1.5),
    "spo2": (98.0, 0.6),
    "temperature_c": (36.8, 0.12),
}

#: Where each deterioration takes the vital signs at its worst.
TARGETS: dict[str, dict[str, float]] = {
    "preeclampsia": {"systolic_bp": 172.0, "diastolic_bp": 116.0, "heart_rate": 92.0},
    "sepsis": {"temperature_c": 38.9, "heart_rate": 128.0, "respiratory_rate": 27.0},
    "haemorrhage": {"heart_rate": 132.0, "systolic_bp": 84.0, "diastolic_bp": 50.0, "respiratory_rate": 24.0},
    "hypoxaemia": {"spo2": 89.0, "respiratory_rate": 28.0, "heart_rate": 104.0},
}


@dataclass(frozen=True)
class VitalsScenario:
    name: str = "normal"  # normal or one of TARGETS
    duration_s: float = 3600.0
    interval_s: float = 300.0
    #: (onset, end): the values ramp from normal to the target over the
    #: first ``ramp_fraction`` of the episode and stay there.
    episode: tuple[float, float] | None = None
    ramp_fraction: float = 0.4
    overrides: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VitalsSample:
    t: float
    values: dict[str, float]


@dataclass(frozen=True)
class SimulatedVitals:
    scenario: str
    samples: list[VitalsSample]
    events: list[GroundTruthEvent]


def _targets(scenario: VitalsScenario) -> dict[str, float]:
    if scenario.name != "normal" and scenario.name not in TARGETS:
        raise ValueError(f"unknown vitals scenario {scenario.name!r}; known: normal, {', '.join(TARGETS)}")
    return {**TARGETS.get(scenario.name, {}), **scenario.overrides}


def _progress(scenario: VitalsScenario, times: np.ndarray) -> np.ndarray:
    """How far the deterioration has gone at each time (0 normal, 1 at its target)."""
    if not (scenario.episode and _targets(scenario)):
        return np.zeros_like(times, dtype=float)
    a, b = scenario.episode
    ramp = max(scenario.ramp_fraction * (b - a), 1.0)
    return np.clip((times - a) / ramp, 0.0, 1.0) * (times < b)


def vital_level(scenario: VitalsScenario, name: str, times: np.ndarray) -> np.ndarray:
    """A vital sign's level (no observation noise) at ``times``: what a continuous monitor of it would follow,
    e.g. the maternal heart rate the CTG monitor records beside the fetal one."""
    mean = NORMAL[name][0]
    return mean + _progress(scenario, np.asarray(times, float)) * (_targets(scenario).get(name, mean) - mean)


def continuation(scenario: VitalsScenario, duration_s: float | None = None) -> VitalsScenario:
    """The same mother after ``scenario`` ends: a deterioration still going on at its end stays at its worst."""
    duration = scenario.duration_s if duration_s is None else duration_s
    going_on = scenario.episode is not None and scenario.episode[1] >= 0.9 * scenario.duration_s
    return VitalsScenario(scenario.name if going_on else "normal", duration, scenario.interval_s,
                          episode=(0.0, duration) if going_on else None, ramp_fraction=0.0,
                          overrides=dict(scenario.overrides) if going_on else {})


def simulate_vitals(scenario: VitalsScenario, seed: int = 0) -> SimulatedVitals:
    rng = np.random.default_rng(seed)
    times = np.arange(scenario.interval_s / 2, scenario.duration_s, scenario.interval_s)
    targets = _targets(scenario)
    progress = _progress(scenario, times)
    events: list[GroundTruthEvent] = []
    if scenario.episode and targets:
        a, b = scenario.episode
        events.append(GroundTruthEvent(f"maternal_{scenario.name}", a, b, {k: float(v) for k, v in targets.items()}))
    samples = []
    for i, t in enumerate(times):
        values = {}
        for name, (mean, sd) in NORMAL.items():
            level = mean + progress[i] * (targets.get(name, mean) - mean)
            values[name] = float(level + rng.normal(0.0, sd))
        values["spo2"] = min(values["spo2"], 100.0)
        values["diastolic_bp"] = min(values["diastolic_bp"], values["systolic_bp"] - 15.0)
        samples.append(VitalsSample(float(t), {k: round(v, 1) for k, v in values.items()}))
    return SimulatedVitals(scenario.name, samples, events)


def standard_vitals_scenarios(duration_s: float = 3600.0, interval_s: float = 300.0) -> list[VitalsScenario]:
    """Normal plus each deterioration over the middle of the record."""
    episode = (duration_s * 0.25, duration_s)
    return [VitalsScenario("normal", duration_s, interval_s)] + [
        VitalsScenario(name, duration_s, interval_s, episode=episode) for name in TARGETS
    ]
