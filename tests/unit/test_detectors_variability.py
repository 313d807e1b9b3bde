"""The vectorised variability and sinusoidal steps give exactly what one segment at a time gave.

The FIGO analysis runs for every bed every 15 s, so these steps were vectorised
(docs/SCALING.md); the one-at-a-time versions are kept here as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.thresholds import MIN_SEGMENT_COVERAGE, CtgThresholds
from detectors.variability import bandwidth, segment_bands, sinusoidal_minutes


def _sinusoidal_one_at_a_time(d1: np.ndarray, usable1: np.ndarray, no_accel1: np.ndarray, th: CtgThresholds) -> np.ndarray:
    span, step = 120, 60
    n = d1.size
    m = (n - span) // step + 1 if n >= span else 0
    out = np.zeros(m, dtype=bool)
    freqs = np.fft.rfftfreq(span, d=1.0) * 60.0
    band = (freqs >= th.sinusoidal_min_cpm - 0.5) & (freqs <= th.sinusoidal_max_cpm + 0.5)
    total = (freqs >= 1.0) & (freqs <= 30.0)
    window = np.hanning(span)
    offset = n - ((m - 1) * step + span)
    for i in range(m):
        a = offset + i * step
        seg, ok, quiet = d1[a:a + span], usable1[a:a + span], no_accel1[a:a + span]
        if ok.mean() < 0.8 or not quiet.all():
            continue
        s = np.where(ok, seg, np.nanmean(seg[ok]))
        s = s - s.mean()
        p = np.abs(np.fft.rfft(s * window)) ** 2
        tot = p[total].sum()
        if tot <= 0:
            continue
        amp = bandwidth(seg[ok])
        out[i] = (p[band].sum() / tot >= th.sinusoidal_power_fraction
                  and th.sinusoidal_min_amplitude_bpm <= amp <= th.sinusoidal_max_amplitude_bpm)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_segment_bands_equal_one_segment_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = 140 + np.cumsum(rng.normal(0, 1, 4 * 1800 + seed * 7))  # a ragged start: minutes align to the end
    usable = rng.random(x.size) > (0.02 if seed % 2 else 0.4)  # scattered and heavy loss
    usable[-4 * 240:] = True  # some whole minutes
    got = segment_bands(x, usable, 4.0, 60.0)
    minutes = [(x[x.size - 240 * (i + 1):x.size - 240 * i], usable[x.size - 240 * (i + 1):x.size - 240 * i])
               for i in range(30)][::-1]
    want = [bandwidth(np.where(ok, seg, np.nan)) if ok.mean() >= MIN_SEGMENT_COVERAGE else np.nan for seg, ok in minutes]
    assert np.array_equal(got, np.array(want), equal_nan=True)


@pytest.mark.parametrize("seed", range(6))
def test_sinusoidal_minutes_equal_one_span_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(1800 + seed * 13, dtype=float)
    d1 = 5 * np.sin(2 * np.pi * 4 / 60 * t) + rng.normal(0, 0.5 + seed, t.size)  # from clear to buried
    usable = rng.random(t.size) > 0.1 * (seed % 3)
    no_accel = np.ones(t.size, bool)
    no_accel[600:640] = False
    th = CtgThresholds()
    got, want = sinusoidal_minutes(d1, usable, no_accel, th), _sinusoidal_one_at_a_time(d1, usable, no_accel, th)
    assert np.array_equal(got, want)
    if seed == 0:
        assert got.sum() > 20  # the clear sine is found, so the comparison is not between two empty answers


def test_row_bandwidths_equal_bandwidth_row_by_row_for_every_count() -> None:
    from detectors.variability import row_bandwidths

    rng = np.random.default_rng(3)
    rows = 140 + rng.normal(0, 5, (400, 240)).round(2)
    for i, row in enumerate(rows):  # every number of values, from none to all
        row[rng.permutation(240)[: int(i * 240 / 399)]] = np.nan
    got = row_bandwidths(rows)
    want = np.array([bandwidth(row) for row in rows])
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[-1]) and np.isfinite(got[0])
