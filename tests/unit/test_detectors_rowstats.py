"""The one-pass row statistics give numpy's own numbers, to the last bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from detectors.rowstats import row_nanmedians


@pytest.mark.parametrize("width", [1, 2, 3, 60, 61])
def test_row_nanmedians_equal_numpy_for_every_count_of_missing_values(width: int) -> None:
    rng = np.random.default_rng(width)
    rows = rng.normal(140, 12, (400, width)).round(2)
    missing = rng.random((400, width)) < rng.random((400, 1))  # rows from none to all missing
    missing[:3] = True  # some rows without any value
    missing[3:6] = False
    rows[missing] = np.nan
    rows[6, :] = 150.0  # ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(rows, axis=1)
    got = row_nanmedians(rows)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isnan(got[:3]).all() and not np.isnan(got[3:6]).any()


def test_row_nanmedians_of_nothing() -> None:
    assert row_nanmedians(np.empty((0, 60))).shape == (0,)
    assert np.isnan(row_nanmedians(np.empty((2, 0)))).all()


def _anchor_levels_one_span_at_a_time(x1: np.ndarray, spans: list[tuple[int, int]]) -> dict:
    """The anchor levels as they were computed before: one ``anchor_level`` (np.median) per span."""
    from detectors.baseline import anchor_level

    return {(a, b): anchor_level(x1[a:b]) for a, b in spans}


@pytest.mark.parametrize("seconds", [1, 59, 61, 600, 1199, 1200, 1201, 1800, 2437, 3600])
def test_the_baseline_anchor_curve_is_the_one_span_at_a_time_curve(seconds: int, monkeypatch) -> None:  # noqa: ANN001
    from detectors import baseline
    from detectors.baseline import anchor_curve

    rng = np.random.default_rng(seconds)
    x1 = (140 + np.cumsum(rng.normal(0, 0.5, seconds))).round(2)
    x1[rng.random(seconds) < 0.2] = np.nan  # scattered loss
    if seconds > 700:
        x1[300:700] = np.nan  # a long gap: spans with few or no values
    batched = anchor_curve(x1)
    with monkeypatch.context() as patch:  # the same curve with each span's level taken on its own
        patch.setattr(baseline, "_anchor_levels", _anchor_levels_one_span_at_a_time)
        one_at_a_time = anchor_curve(x1)
    assert np.array_equal(batched, one_at_a_time, equal_nan=True)
    assert np.isnan(anchor_curve(np.full(seconds, np.nan))).all()
