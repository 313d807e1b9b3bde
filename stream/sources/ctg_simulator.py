"""Synthetic, physiologically grounded CTG with ground truth.

Builds the FHR as baseline (with slow drift) + variability + accelerations +
decelerations tied to contractions, and the UC as basal tone + contractions,
then injects the episodes a scenario asks for (bradycardia, tachycardia,
sinusoidal pattern, reduced variability, signal loss, maternal heart rate
captured instead of fetal, halving). Every injected episode is recorded as a
:class:`GroundTruthEvent` so that detectors and models can be scored.

Shapes follow the FIGO 2015 definitions the detectors implement (onset to
nadir < 30 s for variable, late decelerations starting > 20 s after the
contraction's onset with the nadir after its acme, prolonged > 3 min, ...),
with margins so that the ground truth is unambiguous. Deterministic for a
seed. Pure numpy: publishing to Kafka lives elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

FS = 4.0


@dataclass(frozen=True)
class GroundTruthEvent:
    kind: str  # acceleration, early/late/variable/prolonged_deceleration, bradycardia, ...
    start_s: float
    end_s: float
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Episode spans are (start_s, end_s) in the record."""

    name: str
    duration_s: float = 3600.0
    baseline_bpm: float = 140.0
    drift_bpm: float = 3.0
    variability_bpm: float = 14.0  # peak-to-trough bandwidth
    contraction_interval_s: tuple[float, float] = (150.0, 240.0)
    accelerations_per_10min: float = 1.5
    decel_kind: str | None = None  # early, late, variable: after each contraction in decel_span
    decel_span: tuple[float, float] | None = None
    prolonged: tuple[tuple[float, float], ...] = ()
    bradycardia: tuple[float, float] | None = None
    tachycardia: tuple[float, float] | None = None
    sinusoidal: tuple[float, float] | None = None
    reduced_variability: tuple[float, float] | None = None
    signal_loss: tuple[tuple[float, float], ...] = ()
    maternal_capture: tuple[tuple[float, float], ...] = ()
    halving: tuple[tuple[float, float], ...] = ()
    maternal_hr_bpm: float = 85.0


@dataclass(frozen=True)
class SimulatedCtg:
    scenario: str
    fs: float
    fhr: np.ndarray  # bpm, 0 = signal loss
    uc: np.ndarray
    mhr: np.ndarray  # maternal heart rate channel, bpm
    events: list[GroundTruthEvent]
    contractions: list[tuple[float, float, float]]  # onset, acme, end (s)


def _ramp_shape(t: np.ndarray, start: float, fall: float, hold: float, rise: float) -> np.ndarray:
    """0..1 profile: cosine fall over ``fall`` s, hold, cosine recovery over ``rise`` s."""
    out = np.zeros_like(t)
    a = (t >= start) & (t < start + fall)
    out[a] = 0.5 - 0.5 * np.cos(np.pi * (t[a] - start) / fall)
    b = (t >= start + fall) & (t < start + fall + hold)
    out[b] = 1.0
    c = (t >= start + fall + hold) & (t < start + fall + hold + rise)
    out[c] = 0.5 + 0.5 * np.cos(np.pi * (t[c] - start - fall - hold) / rise)
    return out


def _variability(rng: np.random.Generator, n: int, band: float) -> np.ndarray:
    """Irregular oscillation with the requested peak-to-trough bandwidth per minute."""
    osc = gaussian_filter1d(rng.normal(0, 1, n), sigma=1.5 * FS)
    k = int(60 * FS)
    m = max(1, n // k)
    seg = osc[: m * k].reshape(m, k)
    lo, hi = np.percentile(seg, [2.5, 97.5], axis=1)
    return (osc - osc.mean()) * band / max(float(np.median(hi - lo)), 1e-9)


def simulate_ctg(scenario: Scenario, seed: int = 0, maternal_hr: np.ndarray | None = None) -> SimulatedCtg:
    """One recording of ``scenario``. ``maternal_hr``: the mother's heart-rate level at 4 Hz (the vitals
    simulator's, so the CTG's maternal channel and the vitals tell one story); default a level of
    ``scenario.maternal_hr_bpm`` with a slow drift."""
    rng = np.random.default_rng(seed)
    n = int(scenario.duration_s * FS)
    t = np.arange(n) / FS
    events: list[GroundTruthEvent] = []

    def inside(span: tuple[float, float] | None, x: float) -> bool:
        return span is not None and span[0] <= x < span[1]

    # Baseline with slow drift, and the episodes that move the baseline itself.
    drift = gaussian_filter1d(rng.normal(0, 1, n), sigma=180 * FS)
    drift *= scenario.drift_bpm / max(np.abs(drift).max(), 1e-9)
    base = np.full(n, scenario.baseline_bpm) + drift
    for kind, span, level in (
        ("bradycardia", scenario.bradycardia, 100.0),
        ("tachycardia", scenario.tachycardia, 172.0),
    ):
        if span:
            shift = _ramp_shape(t, span[0], 60.0, span[1] - span[0] - 120.0, 60.0)
            base += shift * (level - scenario.baseline_bpm)
            events.append(GroundTruthEvent(kind, span[0], span[1], {"level_bpm": level}))

    # Variability (reduced or sinusoidal where asked).
    band = np.full(n, scenario.variability_bpm)
    if scenario.reduced_variability:
        a, b = scenario.reduced_variability
        band[(t >= a) & (t < b)] = 2.5
        events.append(GroundTruthEvent("reduced_variability", a, b, {"bandwidth_bpm": 2.5}))
    var = _variability(rng, n, 1.0) * band
    if scenario.sinusoidal:
        a, b = scenario.sinusoidal
        m = (t >= a) & (t < b)
        var[m] = 5.0 * np.sin(2 * np.pi * 4.0 / 60.0 * t[m])
        events.append(GroundTruthEvent("sinusoidal", a, b, {"cpm": 4.0, "amplitude_bpm": 10.0}))
    fhr = base + var

    # Contractions.
    uc = np.full(n, 12.0) + gaussian_filter1d(rng.normal(0, 1.0, n), sigma=2 * FS)
    contractions = []
    c = float(rng.uniform(40, 120))
    while c < scenario.duration_s - 120:
        dur = float(rng.uniform(60, 90))
        amp = float(rng.uniform(35, 60))
        uc += amp * _ramp_shape(t, c, dur / 2, 0.0, dur / 2)
        contractions.append((c, c + dur / 2, c + dur))
        c += float(rng.uniform(*scenario.contraction_interval_s))  # onset to onset

    # Decelerations tied to contractions.
    busy: list[tuple[float, float]] = []
    for onset, acme, end in contractions:
        if scenario.decel_kind and inside(scenario.decel_span, onset):
            kind = scenario.decel_kind
            if kind == "early":
                depth = rng.uniform(20, 28)
                fall = acme - onset
                start, hold, rise = onset, 0.0, end - acme
            elif kind == "late":
                depth = rng.uniform(22, 35)
                start = onset + rng.uniform(25, 40)
                fall = acme + rng.uniform(35, 50) - start
                hold, rise = rng.uniform(5, 15), rng.uniform(40, 60)
            else:  # variable
                depth = rng.uniform(30, 55)
                start = onset + rng.uniform(0, 20)
                fall, hold, rise = rng.uniform(8, 14), rng.uniform(5, 20), rng.uniform(10, 18)
            fhr -= depth * _ramp_shape(t, start, fall, hold, rise)
            events.append(GroundTruthEvent(f"{kind}_deceleration", start, start + fall + hold + rise,
                                           {"depth_bpm": float(depth)}))
            busy.append((start - 60, start + fall + hold + rise + 60))
    for a, b in scenario.prolonged:
        depth = 50.0
        fhr -= depth * _ramp_shape(t, a, 20.0, b - a - 50.0, 30.0)
        events.append(GroundTruthEvent("prolonged_deceleration", a, b, {"depth_bpm": depth}))
        busy.append((a - 120, b + 120))

    # Accelerations at quiet times (not during decelerations or the episodes).
    blocked = list(busy)
    for span in (scenario.bradycardia, scenario.tachycardia, scenario.sinusoidal, scenario.reduced_variability):
        if span:
            blocked.append((span[0] - 120, span[1] + 120))
    blocked += [(a - 60, b + 60) for a, b in scenario.signal_loss + scenario.maternal_capture + scenario.halving]
    expected = int(scenario.accelerations_per_10min * scenario.duration_s / 600)
    placed = 0
    # a short record (the CLI accepts 60 s) may have no room for one: none is placed then
    room = scenario.duration_s - 120 > 60
    for cand in rng.uniform(60, scenario.duration_s - 120, size=expected * 4) if room else ():
        if placed >= expected:
            break
        dur = float(rng.uniform(25, 60))
        if any(a <= cand + dur and cand <= b for a, b in blocked):
            continue
        amp = float(rng.uniform(20, 30))
        fhr += amp * _ramp_shape(t, cand, dur * 0.35, dur * 0.3, dur * 0.35)
        events.append(GroundTruthEvent("acceleration", float(cand), float(cand + dur), {"amplitude_bpm": amp}))
        blocked.append((cand - 60, cand + dur + 60))
        placed += 1

    # Maternal heart rate channel; capture and counting errors; signal loss.
    # Maternal HR: its own variability (a few bpm) and slow drift.
    mhr_drift = gaussian_filter1d(rng.normal(0, 1, n), sigma=240 * FS)
    mhr_drift *= 4.0 / max(np.abs(mhr_drift).max(), 1e-9)
    if maternal_hr is None:
        mhr = scenario.maternal_hr_bpm + _variability(rng, n, 6.0) + mhr_drift
    else:  # the given level takes the place of the drift (the rng draws the same numbers either way)
        mhr = np.resize(np.asarray(maternal_hr, float), n) + _variability(rng, n, 6.0)
    for a, b in scenario.maternal_capture:
        m = (t >= a) & (t < b)
        fhr[m] = mhr[m] + rng.normal(0, 0.7, m.sum())
        events.append(GroundTruthEvent("maternal_hr_capture", a, b))
    for a, b in scenario.halving:
        m = (t >= a) & (t < b)
        fhr[m] = fhr[m] / 2.0
        events.append(GroundTruthEvent("halving_doubling", a, b))
    for a, b in scenario.signal_loss:
        fhr[(t >= a) & (t < b)] = 0.0
        events.append(GroundTruthEvent("signal_loss", a, b))
    fhr = np.round(fhr * 4) / 4  # monitors report in 0.25-bpm steps
    events.sort(key=lambda e: e.start_s)
    return SimulatedCtg(scenario.name, FS, fhr, np.clip(uc, 0, 100), mhr, events, contractions)


def standard_scenarios() -> list[Scenario]:
    """The scenarios detectors are scored on (docs/EVALUATION.md)."""
    hour = 3600.0
    return [
        Scenario("normal", duration_s=hour, accelerations_per_10min=2.0,
                 signal_loss=((900.0, 960.0), (2400.0, 2490.0))),
        Scenario("early_decelerations", duration_s=hour, decel_kind="early", decel_span=(300.0, 3300.0)),
        Scenario("late_decelerations", duration_s=hour, decel_kind="late", decel_span=(300.0, 3300.0),
                 variability_bpm=9.0, accelerations_per_10min=0.5),
        Scenario("variable_decelerations", duration_s=hour, decel_kind="variable", decel_span=(300.0, 3300.0)),
        Scenario("prolonged_deceleration", duration_s=hour, prolonged=((1200.0, 1440.0), (2700.0, 3000.0))),
        Scenario("bradycardia", duration_s=hour, bradycardia=(1500.0, 2700.0)),
        Scenario("tachycardia", duration_s=hour, tachycardia=(1200.0, 2400.0)),
        Scenario("sinusoidal", duration_s=hour, sinusoidal=(900.0, 3300.0), accelerations_per_10min=0.5),
        # 80 min of it: FIGO 2015 makes reduced variability pathological only past 50 min
        Scenario("reduced_variability", duration_s=1.5 * hour, reduced_variability=(600.0, 5400.0)),
        Scenario("artefacts", duration_s=hour,
                 signal_loss=((600.0, 660.0), (1800.0, 1830.0), (3000.0, 3120.0)),
                 maternal_capture=((1200.0, 1380.0), (2400.0, 2520.0)),
                 halving=((2100.0, 2160.0),)),
    ]


def continuation(scenario: Scenario, duration_s: float | None = None) -> Scenario:
    """What a labour looks like after ``scenario`` ends, for ``duration_s`` more (default: as long again).

    A pattern still going on near the end (within its last 10%) goes on for the whole continuation; one
    that had ended stays over; one-off events (prolonged decelerations, artefacts) do not recur. A live
    demo continues its history this way instead of starting the scenario again.
    """
    duration = scenario.duration_s if duration_s is None else duration_s
    ongoing_after = 0.9 * scenario.duration_s

    def going_on(s: tuple[float, float] | None) -> tuple[float, float] | None:
        return (0.0, duration) if s is not None and s[1] >= ongoing_after else None

    return dataclasses.replace(
        scenario, duration_s=duration, decel_span=going_on(scenario.decel_span), prolonged=(),
        bradycardia=going_on(scenario.bradycardia), tachycardia=going_on(scenario.tachycardia),
        sinusoidal=going_on(scenario.sinusoidal), reduced_variability=going_on(scenario.reduced_variability),
        signal_loss=(), maternal_capture=(), halving=(),
    )


def scale_scenario(scenario: Scenario, duration_s: float) -> Scenario:
    """The same scenario over a different duration: every episode span scales with it."""
    f = duration_s / scenario.duration_s
    if f == 1.0:
        return scenario

    def span(s):
        return None if s is None else (s[0] * f, s[1] * f)

    return dataclasses.replace(
        scenario,
        duration_s=duration_s,
        decel_span=span(scenario.decel_span),
        prolonged=tuple(span(s) for s in scenario.prolonged),
        bradycardia=span(scenario.bradycardia),
        tachycardia=span(scenario.tachycardia),
        sinusoidal=span(scenario.sinusoidal),
        reduced_variability=span(scenario.reduced_variability),
        signal_loss=tuple(span(s) for s in scenario.signal_loss),
        maternal_capture=tuple(span(s) for s in scenario.maternal_capture),
        halving=tuple(span(s) for s in scenario.halving),
    )
