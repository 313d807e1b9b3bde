"""Accelerations, decelerations and contractions, and how decelerations
relate in time to contractions (FIGO 2015 early / late / variable / prolonged).

All functions work on 1-Hz arrays (index = seconds from the window start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import find_peaks, peak_widths

from detectors.runs import close_gaps, interpolate_gaps, runs
from detectors.thresholds import (
    BRIDGE_S,
    FALL_SMOOTH_S,
    RETURN_BPM,
    SMOOTH_S,
    UC_SMOOTH_S,
    UC_TONE_WINDOW_S,
    CtgThresholds,
)

#: Share of a raised-cosine fall spent between 20% and 80% of its depth:
#: (arccos(-0.6) - arccos(0.6)) / pi.
COSINE_FALL_20_80 = float((np.arccos(-0.6) - np.arccos(0.6)) / np.pi)


@dataclass(frozen=True)
class Excursion:
    """An acceleration or deceleration, in seconds from the window start."""

    start: int
    end: int  # exclusive
    extreme_at: int  # nadir (deceleration) or peak (acceleration)
    amplitude: float  # bpm from the baseline at the extreme (positive)
    extreme_bpm: float
    baseline_bpm: float
    complete: bool  # False when it runs into the edge of the window (still going)

    @property
    def duration(self) -> float:
        return float(self.end - self.start)


@dataclass(frozen=True)
class Contraction:
    onset: int
    acme: int
    end: int
    amplitude: float  # above basal tone, device units

    @property
    def duration(self) -> float:
        return float(self.end - self.onset)


@dataclass(frozen=True)
class Deceleration:
    excursion: Excursion
    kind: str  # "early", "late", "variable", "prolonged", "unclassified"
    contraction: Contraction | None
    onset_to_nadir_s: float
    atypical: list[str] = field(default_factory=list)  # atypical variable features
    timing: dict[str, float] = field(default_factory=dict)  # lags against the contraction


def smooth_trace(x1: np.ndarray, valid1: np.ndarray) -> np.ndarray:
    """The 1-Hz FHR, gaps interpolated, smoothed over SMOOTH_S seconds: what
    excursions are measured on (computed once, used for both directions)."""
    return uniform_filter1d(interpolate_gaps(x1, valid1), size=SMOOTH_S, mode="nearest")


def excursions(
    x1: np.ndarray, valid1: np.ndarray, smooth: np.ndarray, b: np.ndarray,
    sign: int, amplitude: float, min_s: float, max_s: float | None,
) -> list[Excursion]:
    """Excursions beyond ``amplitude`` bpm (sign +1 above, -1 below the baseline).

    Measured on ``smooth`` (:func:`smooth_trace`), so that the
    beat-to-beat variability riding on the baseline (normally 5-25 bpm peak
    to trough) neither creates excursions nor blurs where one starts. Core:
    smoothed FHR beyond the amplitude (short gaps bridged); extent: out to
    where it returns within RETURN_BPM of the baseline; kept when the extent
    lasts at least ``min_s`` (FIGO: "> 15 bpm ... lasting > 15 s"). The
    reported extreme FHR is the raw one.
    """
    n = x1.size
    if n == 0 or not np.isfinite(b).any() or not valid1.any():
        return []
    usable = close_gaps(valid1, BRIDGE_S)
    d = np.where(usable, sign * (smooth - b), np.nan)
    with np.errstate(invalid="ignore"):
        core = d >= amplitude
        away = d > RETURN_BPM
    out: list[Excursion] = []
    for a, e in runs(away).tolist():
        if e - a < min_s or (max_s is not None and e - a > max_s) or not core[a:e].any():
            continue
        # Inside a run of ``away`` every d is a number (NaN is never > RETURN_BPM): argmax is nanargmax.
        k = a + int(np.argmax(d[a:e]))
        raw = x1[a:e][valid1[a:e]]
        raw = raw[np.isfinite(raw)]
        # The raw extreme: the highest valid FHR above the baseline, the lowest below it.
        extreme = float(raw.max() if sign > 0 else raw.min()) if raw.size else float(smooth[k])
        out.append(
            Excursion(
                start=int(a), end=int(e), extreme_at=k, amplitude=float(d[k]),
                extreme_bpm=extreme, baseline_bpm=float(b[k]),
                complete=bool(a > 0 and e < n),
            )
        )
    return out


def contractions(uc1: np.ndarray, th: CtgThresholds) -> list[Contraction]:
    """Contractions on a 1-Hz tocogram: peaks rising above the basal tone.

    The basal tone is the running minimum over 3 min, smoothed; a contraction
    is a peak at least ``contraction_min_amplitude`` above it whose width (at
    80% of its height from the tone) lasts ``contraction_min_s`` or more.
    """
    n = uc1.size
    ok = np.isfinite(uc1)
    if n < th.contraction_min_s or ok.mean() < 0.5:
        return []
    u = np.interp(np.arange(n), np.flatnonzero(ok), uc1[ok]) if not ok.all() else uc1.astype(float)
    smooth = uniform_filter1d(u, size=UC_SMOOTH_S, mode="nearest")
    tone = uniform_filter1d(
        minimum_filter1d(smooth, size=UC_TONE_WINDOW_S, mode="nearest"), size=UC_TONE_WINDOW_S, mode="nearest"
    )
    above = smooth - tone
    peaks, _ = find_peaks(above, prominence=th.contraction_min_amplitude, distance=int(th.contraction_min_s))
    if peaks.size == 0:
        return []
    _, _, left, right = peak_widths(above, peaks, rel_height=0.8)
    out = []
    for p, lo, hi in zip(peaks, left, right):
        onset, end = int(np.floor(lo)), int(np.ceil(hi))
        if end - onset < th.contraction_min_s:
            continue
        out.append(Contraction(onset=onset, acme=int(p), end=min(end, n), amplitude=float(above[p])))
    return out


def _associated(exc: Excursion, cons: list[Contraction], th: CtgThresholds) -> Contraction | None:
    """The contraction a deceleration follows: its nadir within the contraction
    (from shortly before onset to ``contraction_association_s`` after its end),
    closest acme first."""
    best, best_gap = None, np.inf
    for c in cons:
        if c.onset - 30 <= exc.extreme_at <= c.end + th.contraction_association_s:
            gap = abs(exc.extreme_at - c.acme)
            if gap < best_gap:
                best, best_gap = c, gap
    return best


def fall_time(x1: np.ndarray, b: np.ndarray, exc: Excursion) -> float:
    """Onset-to-nadir time of a deceleration, robust to variability.

    The time the smoothed FHR takes to fall from 20% to 80% of the depth,
    scaled to the whole fall of a U-shaped (raised-cosine) deceleration, in
    which 20% -> 80% takes 41% of the onset-to-nadir time. Where the departure
    from the baseline is hidden by variability, this still separates abrupt
    (V, < 30 s) from gradual (U) decelerations. A straight fall would give
    60%; the cosine model reads gradual decelerations as clinicians draw
    them (from where the trace starts to bend); the price is that a straight
    fall of 20-30 s is read as gradual (early or late by its timing).
    """
    lo = max(0, exc.start - 30)
    seg = x1[lo: exc.extreme_at + 1]
    ok = np.isfinite(seg)
    if ok.sum() < 3:
        return float(exc.extreme_at - exc.start)
    smooth = uniform_filter1d(interpolate_gaps(seg, ok), size=FALL_SMOOTH_S, mode="nearest")
    depth_curve = b[lo: exc.extreme_at + 1] - smooth
    depth = depth_curve[-1] if depth_curve.size else 0.0
    if depth <= 0:
        return float(exc.extreme_at - exc.start)
    below20 = np.flatnonzero(depth_curve <= 0.2 * depth)
    t20 = below20[-1] if below20.size else 0
    above80 = np.flatnonzero(depth_curve[t20:] >= 0.8 * depth)
    t80 = t20 + (above80[0] if above80.size else depth_curve.size - 1 - t20)
    return float((t80 - t20) / COSINE_FALL_20_80)


def classify_decelerations(
    decels: list[Excursion],
    cons: list[Contraction],
    x1: np.ndarray,
    b: np.ndarray,
    band_within: list[float],
    th: CtgThresholds,
) -> list[Deceleration]:
    """FIGO 2015 classes, with NICE's atypical ("concerning") variable features.

    - prolonged: lasting > 3 min;
    - variable: abrupt, onset to nadir < 30 s;
    - late: gradual, starting > 20 s after the contraction's onset with its
      nadir after the acme and its return after the contraction's end;
    - early: gradual, nadir coinciding with the acme;
    - unclassified: gradual with no contraction to relate it to.
    """
    out = []
    for exc, band in zip(decels, band_within, strict=True):
        onset_to_nadir = fall_time(x1, b, exc)
        c = _associated(exc, cons, th)
        timing: dict[str, float] = {}
        atypical: list[str] = []
        if c is not None:
            timing = {
                "start_after_onset_s": float(exc.start - c.onset),
                "nadir_after_acme_s": float(exc.extreme_at - c.acme),
                "return_after_end_s": float(exc.end - c.end),
            }
        if exc.duration > th.prolonged_deceleration_s:
            kind = "prolonged"
        elif onset_to_nadir < th.abrupt_onset_to_nadir_s:
            kind = "variable"
            if exc.duration > th.atypical_duration_s:
                atypical.append(f"lasting {exc.duration:.0f} s (> {th.atypical_duration_s:.0f} s)")
            if exc.amplitude > th.atypical_depth_bpm:
                atypical.append(f"depth {exc.amplitude:.0f} bpm (> {th.atypical_depth_bpm:.0f} bpm)")
            if band < th.variability_reduced_bpm:
                atypical.append(f"reduced variability within ({band:.1f} bpm)")
            after = x1[exc.end: exc.end + 30]
            after = after[np.isfinite(after)]
            if exc.complete and after.size >= 10 and np.mean(after) < exc.baseline_bpm - 10:
                atypical.append("no return to the previous baseline")
        elif c is None:
            kind = "unclassified"
        elif (
            timing["nadir_after_acme_s"] > th.early_nadir_to_acme_s
            or (timing["start_after_onset_s"] > th.late_onset_lag_s and timing["return_after_end_s"] > 0)
        ):
            kind = "late"
        else:
            kind = "early"
        out.append(Deceleration(exc, kind, c, onset_to_nadir, atypical, timing))
    return out
