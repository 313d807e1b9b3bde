"""The mask and resampling helpers give numpy's own numbers, to the last bit.

Each of them replaced a general numpy call on the FIGO analysis's hot path (bench/figo_cost.py); the
reference here is the call it replaced, so a change that moves a result by one ulp fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.baseline import to_1hz
from detectors.runs import centred_counts, interpolate_gaps, row_true_fractions, true_fraction


def _masks(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(n) < p for n in (0, 1, 2, 59, 60, 61, 7200) for p in (0.0, 0.3, 0.97, 1.0)]


@pytest.mark.parametrize("window", [1, 2, 60, 61, 240, 10_000])
def test_centred_counts_equal_the_clipped_cumulative_sum(window: int) -> None:
    for mask in _masks(window):
        csum = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        idx, half = np.arange(mask.size), window // 2
        expected = csum[np.clip(idx + half + 1, 0, mask.size)] - csum[np.clip(idx - half, 0, mask.size)]
        assert np.array_equal(centred_counts(mask, window), expected)


def test_true_fraction_equals_the_mean_of_the_mask() -> None:
    for mask in _masks(1):
        if mask.size:
            assert true_fraction(mask) == mask.mean()
    rows = np.random.default_rng(2).random((50, 60)) < 0.7
    assert np.array_equal(row_true_fractions(rows), rows.mean(axis=1))


def test_interpolate_gaps_without_gaps_gives_the_trace_back_as_np_interp_does() -> None:
    x = np.random.default_rng(3).normal(140, 12, 7200)
    idx = np.arange(x.size)
    full = interpolate_gaps(x, np.ones(x.size, bool))
    assert np.array_equal(full, np.interp(idx, idx, x)) and full is not x
    valid = np.random.default_rng(4).random(x.size) < 0.8
    assert np.array_equal(interpolate_gaps(x, valid), np.interp(idx, idx[valid], x[valid]))
    assert np.isnan(interpolate_gaps(x, np.zeros(x.size, bool))).all()


@pytest.mark.parametrize("fs", [1.0, 2.0, 4.0, 5.0, 7.0])
def test_to_1hz_equals_numpy_row_sums(fs: float) -> None:
    """Below 8 samples a second numpy sums each row left to right; so does to_1hz, column by column."""
    rng = np.random.default_rng(int(fs))
    for n in (0, 3, 4, 4 * 1800 + 3):
        x = rng.normal(140, 25, n)
        valid = rng.random(n) < 0.8
        k = max(1, int(round(fs)))
        m = (n // k) * k
        rows = np.where(valid[:m], x[:m], 0.0).reshape(-1, k)
        counts = valid[:m].reshape(-1, k).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.where(counts * 2 >= k, rows.sum(axis=1) / counts, np.nan)
        got, ok = to_1hz(x, valid, fs)
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(ok, counts * 2 >= k)
