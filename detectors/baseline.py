"""FHR baseline: a curve to measure excursions against, and the FIGO value.

FIGO 2015 defines the baseline as the mean level of the most horizontal and
least oscillatory FHR segments, estimated over 10-min periods. Automated
estimators (Mantel et al. 1990; Dawes et al. 1982; reviewed in Boudet et al.,
FHRMA, 2019) share one idea: anchor on a robust central level (Dawes: the
histogram mode; here the median, see :func:`anchor_level`), then low-pass filter the trace while iteratively excluding samples far
from the current estimate (accelerations and decelerations). That is what
this module does, on a 1-Hz version of the trace.

The anchor is taken over a 20-min span, so that only a change lasting
longer than 10 minutes moves it: FIGO 2015 calls a fall lasting > 10 min a
change of baseline (bradycardia), a shorter one a (prolonged) deceleration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from detectors.rowstats import row_nanmedians
from detectors.runs import close_gaps, runs
from detectors.thresholds import (
    ANCHOR_SPAN_S,
    ANCHOR_STEP_S,
    EXCLUSION_MARGIN_S,
    LOWPASS_S,
    REFINEMENT_LIMITS,
    SMOOTH_S,
    CtgThresholds,
)


@dataclass(frozen=True)
class BaselineEstimate:
    value: float | None  # mean level of stable segments (bpm), None when undeterminable
    rounded: float | None  # rounded to 5 bpm (NICHD 2008)
    stable_s: float  # seconds of stable baseline segments in the window
    determinable: bool
    reason: str  # why not determinable, or ""


def to_1hz(x: np.ndarray, valid: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean of valid samples per second; a second is valid when half its samples are."""
    k = max(1, int(round(fs)))
    n = (x.size // k) * k
    xs = np.where(valid[:n], x[:n], 0.0).reshape(-1, k)
    vs = valid[:n].reshape(-1, k)
    # Column by column, left to right: bit for bit numpy's row sums for rows of fewer than 8 values
    # (4 Hz: 4; numpy sums longer rows pairwise), without the cost of reducing thousands of short rows.
    totals, counts = xs[:, 0].copy(), vs[:, 0].astype(np.int64)
    for j in range(1, k):
        totals += xs[:, j]
        counts += vs[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = totals / counts
    ok = counts * 2 >= k
    return np.where(ok, mean, np.nan), ok


def anchor_level(x: np.ndarray) -> float | None:
    """Robust central level of the valid samples: their median.

    A histogram mode (Dawes) favours whatever segment is least variable: a
    4-min deceleration with a steady rate outvotes 6 min of baseline with
    normal variability. The median holds as long as the baseline fills more
    than half of the span, which is the same condition under which FIGO's
    "most horizontal segments" are the baseline at all.
    """
    v = x[np.isfinite(x)]
    if v.size == 0:
        return None
    return float(np.median(v))


def anchor_curve(x1: np.ndarray) -> np.ndarray:
    """Anchor level over the trailing 20 min, evaluated each minute.

    Trailing windows keep the estimate at a given minute free of what came
    more than a few minutes later; while the history is shorter than 20 min
    the whole history is one span.
    """
    n = x1.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    ends = list(range(min(n, ANCHOR_STEP_S), n, ANCHOR_STEP_S)) + [n]
    # Until 20 min of history exist, the whole history is the span (the first 20 min share one span).
    spans = [(max(0, end - ANCHOR_SPAN_S), max(end, min(n, ANCHOR_SPAN_S))) for end in ends]
    levels = _anchor_levels(x1, sorted(set(spans)))
    last = None
    prev_end = 0
    for end, span in zip(ends, spans):
        mode = levels[span]
        last = mode if mode is not None else last
        out[prev_end:end] = np.nan if last is None else last
        prev_end = end
    # Before the first full span the first anchor applies (no data to do better).
    first = np.flatnonzero(np.isfinite(out))
    if first.size:
        out[: first[0]] = out[first[0]]
    return out


def _anchor_levels(x1: np.ndarray, spans: list[tuple[int, int]]) -> dict[tuple[int, int], float | None]:
    """:func:`anchor_level` of each span, the spans of one length in one pass (the same numbers:
    the median of the finite values, via :func:`detectors.rowstats.row_nanmedians`)."""
    finite = np.where(np.isfinite(x1), x1, np.nan)
    levels: dict[tuple[int, int], float | None] = {}
    for width in sorted({b - a for a, b in spans}):
        same = [span for span in spans if span[1] - span[0] == width]
        medians = row_nanmedians(np.stack([finite[a:b] for a, b in same]))
        levels.update((span, None if np.isnan(med) else float(med)) for span, med in zip(same, medians))
    return levels


def _reanchor_sustained_shifts(x1: np.ndarray, valid1: np.ndarray, anchor: np.ndarray, smooth: np.ndarray,
                               limit: float, min_s: int) -> np.ndarray:
    """Give every stretch that stays beyond ``limit`` of the anchor for more
    than ``min_s`` seconds its own level: FIGO 2015 reads such a stretch as a
    new baseline (tachycardia, bradycardia), not as one long excursion."""
    out = anchor.copy()
    with np.errstate(invalid="ignore"):
        beyond = close_gaps(np.abs(smooth - anchor) > limit, 30)
    for a, e in runs(beyond):
        if e - a > min_s:
            level = anchor_level(np.where(valid1[a:e], x1[a:e], np.nan))
            if level is not None:
                out[a:e] = level
    return out


def baseline_curve(x1: np.ndarray, valid1: np.ndarray, shift_min_s: int = 600, shift_bpm: float = 15.0) -> np.ndarray:
    """Baseline at each second: anchor, re-anchored where the level moved for
    more than 10 min, then iterative low-pass with exclusion."""
    b = anchor_curve(np.where(valid1, x1, np.nan))
    if not np.isfinite(b).any():
        return b
    filled = np.where(valid1, x1, b)
    smooth = uniform_filter1d(filled, size=SMOOTH_S, mode="nearest")
    b = _reanchor_sustained_shifts(x1, valid1, b, smooth, shift_bpm, shift_min_s)
    for limit in REFINEMENT_LIMITS:
        # Exclude each excursion over its whole span (Mantel), not just the
        # samples beyond the limit: its shoulders would drag the baseline.
        far = maximum_filter1d((np.abs(smooth - b) > limit).astype(np.uint8), size=EXCLUSION_MARGIN_S, mode="nearest")
        keep = valid1 & ~far.astype(bool)
        y = np.where(keep, x1, b)
        b = uniform_filter1d(y, size=LOWPASS_S, mode="nearest")
    return b


def window_baseline(
    x1: np.ndarray, valid1: np.ndarray, b: np.ndarray, in_event: np.ndarray, th: CtgThresholds
) -> BaselineEstimate:
    """FIGO baseline of the last ``baseline_window_s`` seconds of the history."""
    w = int(th.baseline_window_s)
    xs, vs, bs, es = x1[-w:], valid1[-w:], b[-w:], in_event[-w:]
    stable = vs & ~es & (np.abs(np.where(vs, xs, np.inf) - bs) <= th.deceleration_bpm)
    stable_s = float(stable.sum())
    if stable_s < th.baseline_min_stable_s:
        return BaselineEstimate(None, None, stable_s, False,
                                f"only {stable_s:.0f} s of stable baseline segments (< {th.baseline_min_stable_s:.0f} s)")
    value = float(np.mean(xs[stable]))
    rounded = float(th.baseline_round_to * np.round(value / th.baseline_round_to))
    return BaselineEstimate(value, rounded, stable_s, True, "")
