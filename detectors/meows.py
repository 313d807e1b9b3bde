"""Maternal early warning: MEOWS triggers and deterioration trends.

Modified Early Obstetric Warning System (Singh et al., Anaesthesia 2012;
chart in :mod:`detectors.thresholds`): each vital sign falls in a red, a
yellow or no trigger band; one red or two yellow triggers call for urgent
medical review. On top of single observations, a trend rule catches the
classic picture of concealed haemorrhage or sepsis: heart rate rising while
systolic pressure falls, or a shock index (HR / SBP) at or above 0.9.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.findings import Finding, Severity
from detectors.thresholds import MeowsChart

DEFAULT_CHART = MeowsChart()
MEOWS = "MEOWS (Singh et al. 2012)"


@dataclass(frozen=True)
class VitalsObservation:
    """One set of maternal vital signs at time ``t`` (seconds); any may be missing."""

    t: float
    heart_rate: float | None = None
    systolic_bp: float | None = None
    diastolic_bp: float | None = None
    respiratory_rate: float | None = None
    spo2: float | None = None
    temperature_c: float | None = None
    avpu: str | None = None  # "A", "V", "P" or "U"


@dataclass(frozen=True)
class MeowsResult:
    red: dict[str, float | str] = field(default_factory=dict)  # parameter -> value
    yellow: dict[str, float | str] = field(default_factory=dict)
    review: bool = False  # one red or two yellow: urgent medical review
    findings: list[Finding] = field(default_factory=list)

    @property
    def score(self) -> tuple[int, int]:
        """(red count, yellow count), the chart's own tally."""
        return len(self.red), len(self.yellow)


def score_observation(obs: VitalsObservation, chart: MeowsChart = DEFAULT_CHART) -> MeowsResult:
    """Red and yellow triggers of the latest observation."""
    red: dict[str, float | str] = {}
    yellow: dict[str, float | str] = {}
    for key, param in chart.parameters.items():
        value = getattr(obs, key, None)
        if value is None or not np.isfinite(value):
            continue
        if any(b.contains(value) for b in param.red):
            red[key] = value
        elif any(b.contains(value) for b in param.yellow):
            yellow[key] = value
    if obs.avpu:
        level = obs.avpu.strip().upper()[:1]
        if level in chart.avpu_red:
            red["avpu"] = level
        elif level in chart.avpu_yellow:
            yellow["avpu"] = level
    review = bool(red) or len(yellow) >= chart.yellow_triggers_for_review
    findings: list[Finding] = []
    if review or yellow:
        def fmt(d: Mapping[str, float | str]) -> str:
            return ", ".join(
                f"{chart.parameters[k].name if k in chart.parameters else 'conscious level'} {v}"
                + (f" {chart.parameters[k].unit}" if k in chart.parameters else "")
                for k, v in d.items()
            )

        parts = []
        if red:
            parts.append(f"red: {fmt(red)}")
        if yellow:
            parts.append(f"yellow: {fmt(yellow)}")
        severity = Severity.URGENT if review else Severity.ADVISORY
        findings.append(Finding(
            "meows_trigger" if review else "meows_yellow", severity, obs.t, obs.t,
            rule=f"{MEOWS}: one red or {chart.yellow_triggers_for_review} yellow triggers -> urgent review",
            sentence=("Maternal early warning, urgent review: " if review else "Maternal early warning: ") + "; ".join(parts),
            values={"red": dict(red), "yellow": dict(yellow)},
        ))
    return MeowsResult(red=red, yellow=yellow, review=review, findings=findings)


def _slope_change(ts: np.ndarray, vs: np.ndarray) -> float:
    """Change over the span from a least-squares line (robust to one noisy reading)."""
    if ts.size < 2 or np.ptp(ts) == 0:
        return 0.0
    slope = np.polyfit(ts, vs, 1)[0]
    return float(slope * np.ptp(ts))


def vitals_trend(history: Sequence[VitalsObservation], chart: MeowsChart = DEFAULT_CHART) -> list[Finding]:
    """Rising heart rate with falling systolic pressure, and the shock index."""
    if not history:
        return []
    now = history[-1].t
    recent = [o for o in history if o.t >= now - chart.trend_window_s]
    findings: list[Finding] = []
    pairs = [(o.t, o.heart_rate, o.systolic_bp) for o in recent if o.heart_rate is not None and o.systolic_bp is not None]
    if len(pairs) >= 3:
        ts = np.array([p[0] for p in pairs])
        hr = np.array([p[1] for p in pairs], dtype=float)
        sbp = np.array([p[2] for p in pairs], dtype=float)
        d_hr, d_sbp = _slope_change(ts, hr), _slope_change(ts, sbp)
        if d_hr >= chart.trend_hr_rise and -d_sbp >= chart.trend_sbp_fall:
            findings.append(Finding(
                "maternal_deterioration_trend", Severity.URGENT, float(ts[0]), float(ts[-1]),
                rule=(f"trend: HR rising >= {chart.trend_hr_rise:.0f}/min and systolic BP falling >= "
                      f"{chart.trend_sbp_fall:.0f} mmHg within {chart.trend_window_s / 60:.0f} min"),
                sentence=(f"Maternal HR rising ({hr[0]:.0f} -> {hr[-1]:.0f}/min) while systolic BP falls "
                          f"({sbp[0]:.0f} -> {sbp[-1]:.0f} mmHg): consider haemorrhage or sepsis"),
                values={"hr_change": round(d_hr, 1), "sbp_change": round(d_sbp, 1), "n_observations": len(pairs)},
            ))
    last = history[-1]
    if last.heart_rate is not None and last.systolic_bp:
        si = last.heart_rate / last.systolic_bp
        if si >= chart.shock_index:
            findings.append(Finding(
                "shock_index", Severity.URGENT, last.t, last.t,
                rule=f"obstetric shock index HR/SBP >= {chart.shock_index} (Nathan et al., BJOG 2015)",
                sentence=f"Shock index {si:.2f} (HR {last.heart_rate:.0f} / SBP {last.systolic_bp:.0f})",
                values={"shock_index": round(si, 3), "heart_rate": last.heart_rate, "systolic_bp": last.systolic_bp},
            ))
    return findings
