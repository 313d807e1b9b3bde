"""Baseline variability and the sinusoidal pattern (FIGO 2015).

Variability is the bandwidth (peak to trough) of the FHR in 1-min segments,
away from accelerations and decelerations; FIGO 2015: normal 5-25 bpm,
reduced < 5 bpm, increased (saltatory) > 25 bpm. The sinusoidal pattern is a
regular, smooth undulation of 5-15 bpm amplitude at 3-5 cycles/min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from detectors.runs import interpolate_gaps, row_true_fractions, true_fraction
from detectors.thresholds import BAND_PERCENTILES, MIN_SEGMENT_COVERAGE, CtgThresholds


@dataclass(frozen=True)
class VariabilityEstimate:
    bands: np.ndarray  # bandwidth per 1-min segment (NaN when not assessable)
    median_bpm: float | None  # over the last 10 min
    reduced_s: float  # trailing run of reduced-variability minutes (seconds)
    increased_s: float  # trailing run of increased-variability minutes


def bandwidth(x: np.ndarray) -> float:
    v = x[np.isfinite(x)]
    if v.size < 2:
        return float("nan")
    lo, hi = np.percentile(v, BAND_PERCENTILES)
    return float(hi - lo)


def row_bandwidths(rows: np.ndarray) -> np.ndarray:
    """:func:`bandwidth` of each row of ``rows [m, k]`` (NaN = not a value), in one pass.

    The same numbers as :func:`bandwidth` row by row: each row's finite values
    are ranked and the percentiles interpolated with ``np.percentile``'s default
    ('linear') arithmetic, step for step (tests/unit/test_detectors_variability.py
    holds the two equal). Why: one percentile call per minute was the largest
    single cost of a FIGO analysis, which runs on a 30-min window every 15 s
    for every bed (docs/SCALING.md).
    """
    rows = np.asarray(rows, dtype=float)
    count = np.isfinite(rows).sum(axis=1)
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        return np.full(rows.shape[0], np.nan)
    ranked = np.sort(rows, axis=1)  # NaN sorts last
    virtual = (count[:, None] - 1) * np.true_divide(np.asarray(BAND_PERCENTILES, dtype=float), 100)[None, :]
    below = np.floor(virtual)
    above = below + 1
    last = np.maximum(count - 1, 0)[:, None]
    past_end = virtual >= last
    below_i = np.where(past_end, last, below).astype(np.intp)
    above_i = np.where(past_end, last, above).astype(np.intp)
    gamma = virtual - np.where(past_end, -1, below_i)  # as numpy: the index past the end counts as -1
    lo_v, hi_v = np.take_along_axis(ranked, below_i, axis=1), np.take_along_axis(ranked, above_i, axis=1)
    diff = hi_v - lo_v
    value = np.where(gamma >= 0.5, hi_v - diff * (1 - gamma), lo_v + diff * gamma)
    out = value[:, 1] - value[:, 0]
    out[count < 2] = np.nan
    return out


def segment_bands(x: np.ndarray, usable: np.ndarray, fs: float, segment_s: float) -> np.ndarray:
    """Bandwidth of each whole 1-min segment, aligned to the end of the trace."""
    k = int(round(segment_s * fs))
    m = x.size // k
    if m == 0:
        return np.empty(0)
    start = x.size - m * k
    xs = np.where(usable, x, np.nan)[start:].reshape(m, k)
    cov = row_true_fractions(usable[start:].reshape(m, k))
    bands = row_bandwidths(xs)
    bands[cov < MIN_SEGMENT_COVERAGE] = np.nan
    return bands


def trailing_run(flags: np.ndarray, assessable: np.ndarray) -> int:
    """How many segments at the end are flagged (non-assessable ones end the run)."""
    count = 0
    for f, a in zip(flags[::-1], assessable[::-1]):
        if not (a and f):
            break
        count += 1
    return count


def estimate_variability(
    x: np.ndarray, usable: np.ndarray, fs: float, th: CtgThresholds
) -> VariabilityEstimate:
    bands = segment_bands(x, usable, fs, th.variability_segment_s)
    ok = np.isfinite(bands)
    last10 = bands[-int(th.baseline_window_s / th.variability_segment_s):]
    last10 = last10[np.isfinite(last10)]
    median = float(np.median(last10)) if last10.size else None
    with np.errstate(invalid="ignore"):
        reduced = trailing_run(bands < th.variability_reduced_bpm, ok)
        increased = trailing_run(bands > th.variability_increased_bpm, ok)
    return VariabilityEstimate(
        bands=bands, median_bpm=median,
        reduced_s=reduced * th.variability_segment_s, increased_s=increased * th.variability_segment_s,
    )


def variability_within(
    x: np.ndarray, usable: np.ndarray, spans: list[tuple[int, int]], fs: float, th: CtgThresholds
) -> list[list[tuple[float, float]]]:
    """Variability inside each deceleration: (bandwidth, seconds) per piece.

    ``spans`` are the bodies of the decelerations (where the FHR is at least
    15 bpm below the baseline) at the full sample rate, so that the fall and
    the recovery do not count as variability. Each is detrended by its own
    30-s running mean (the baseline outside must not leak in) and cut into
    1-min pieces from its start; a last piece of at least 30 s counts for its
    own length. FIGO 2015: reduced variability for > 3 min during
    decelerations is pathological.
    """
    piece = int(th.variability_segment_s * fs)
    owners: list[int] = []  # which deceleration each piece belongs to
    parts: list[np.ndarray] = []
    for i, (a, b) in enumerate(spans):
        seg, ok = np.asarray(x[a:b], dtype=float), usable[a:b]
        if np.count_nonzero(ok) < piece * MIN_SEGMENT_COVERAGE:
            continue
        filled = interpolate_gaps(seg, ok)
        detrended = np.where(ok, seg - uniform_filter1d(filled, size=max(1, int(30 * fs)), mode="nearest"), np.nan)
        for start in range(0, seg.size, piece):
            part, part_ok = detrended[start:start + piece], ok[start:start + piece]
            if part.size >= piece // 2 and true_fraction(part_ok) >= MIN_SEGMENT_COVERAGE:
                owners.append(i)
                parts.append(part)
    out: list[list[tuple[float, float]]] = [[] for _ in spans]
    if parts:
        # every piece's bandwidth in one pass (rows padded with NaN: the same numbers as bandwidth() per piece)
        rows = np.full((len(parts), piece), np.nan)
        for j, part in enumerate(parts):
            rows[j, :part.size] = part
        for owner, part, band in zip(owners, parts, row_bandwidths(rows)):
            out[owner].append((float(band), part.size / fs))
    return out


def sinusoidal_minutes(d1: np.ndarray, usable1: np.ndarray, no_accel1: np.ndarray, th: CtgThresholds) -> np.ndarray:
    """Per 1-min step, whether the 2-min span ending there is sinusoidal (see :func:`sinusoidal_steps`)."""
    return sinusoidal_steps(d1, usable1, no_accel1, th)[0]


def sinusoidal_steps(
    d1: np.ndarray, usable1: np.ndarray, no_accel1: np.ndarray, th: CtgThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """Per 1-min step, whether the 2-min span ending there is sinusoidal, and whether it could be judged.

    ``d1`` is the 1-Hz FHR minus its baseline. A span qualifies when most of
    its power (from 1 to 30 cycles/min) lies at 3-5 cycles/min, its bandwidth
    is 5-15 bpm, and it holds no acceleration (FIGO 2015). A span with less
    than 80 % valid signal, or with an acceleration, cannot be judged: it is
    neither sinusoidal nor evidence against it.
    """
    span, step = 120, 60
    n = d1.size
    m = (n - span) // step + 1 if n >= span else 0
    out = np.zeros(m, dtype=bool)
    if m == 0:
        return out, np.zeros(0, dtype=bool)
    freqs = np.fft.rfftfreq(span, d=1.0) * 60.0  # cycles per minute
    band = (freqs >= th.sinusoidal_min_cpm - 0.5) & (freqs <= th.sinusoidal_max_cpm + 0.5)
    total = (freqs >= 1.0) & (freqs <= 30.0)
    window = np.hanning(span)
    offset = n - ((m - 1) * step + span)
    starts = offset + step * np.arange(m)
    idx = starts[:, None] + np.arange(span)[None, :]
    seg, ok, quiet = d1[idx], usable1[idx].astype(bool), no_accel1[idx].astype(bool)
    candidate = (row_true_fractions(ok) >= 0.8) & quiet.all(axis=1)
    if not candidate.any():
        return out, candidate
    seg, ok = seg[candidate], ok[candidate]
    # lost seconds take the mean of the valid ones (only spans with a lost second need it), then the span is centred
    fill = np.zeros(len(seg))
    for i in np.flatnonzero(~ok.all(axis=1)):
        fill[i] = np.nanmean(seg[i][ok[i]])
    s = np.where(ok, seg, fill[:, None])
    s = s - s.mean(axis=1, keepdims=True)
    p = np.abs(np.fft.rfft(s * window, axis=1)) ** 2
    tot = p[:, total].sum(axis=1)
    amp = row_bandwidths(np.where(ok, seg, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        sinusoidal = (
            (tot > 0)
            & (p[:, band].sum(axis=1) / np.where(tot > 0, tot, 1.0) >= th.sinusoidal_power_fraction)
            & (amp >= th.sinusoidal_min_amplitude_bpm) & (amp <= th.sinusoidal_max_amplitude_bpm)
        )
    out[np.flatnonzero(candidate)] = sinusoidal
    return out, candidate
