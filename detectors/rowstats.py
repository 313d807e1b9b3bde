"""Per-row statistics of 2-D arrays, equal to numpy's, in one vectorised pass.

The FIGO analysis runs on a 30-min window every 15 s for every bed, so numpy's
general-purpose paths (masked arrays behind ``np.nanmedian`` along an axis)
cost a worker more than the arithmetic does (docs/SCALING.md). The functions
here give the same numbers, not just close ones; tests/unit/test_detectors_rowstats.py
holds them equal to numpy's.
"""

from __future__ import annotations

import numpy as np


def row_nanmedians(rows: np.ndarray) -> np.ndarray:
    """``np.nanmedian(rows, axis=1)`` for finite values with NaN for missing ones, without the warning.

    Parameters
    ----------
    rows : numpy.ndarray
        Shape (m, k); NaN marks a missing value, every other value is finite.

    Returns
    -------
    numpy.ndarray
        Shape (m,): each row's median of its values (the mean of the two middle ones for an even
        count, as numpy computes it: their sum halved), NaN for a row without values.
    """
    rows = np.asarray(rows, dtype=float)
    m = rows.shape[0]
    if m == 0 or rows.shape[1] == 0:
        return np.full(m, np.nan)
    missing = np.isnan(rows)
    count = rows.shape[1] - np.count_nonzero(missing, axis=1)
    high = np.minimum(count // 2, rows.shape[1] - 1)
    low = np.where(count % 2 == 1, high, np.maximum(high - 1, 0))
    # Missing values placed last, then only the middle order statistics put in place (a selection, not a
    # sort: a fifth of the time on 20-min rows); the values found are the sorted ones, so the median is.
    ranked = np.partition(np.where(missing, np.inf, rows), np.unique(np.concatenate((low, high))), axis=1)
    pair = np.take_along_axis(ranked, np.stack((low, high), axis=1), axis=1)
    out = (pair[:, 0] + pair[:, 1]) / 2.0
    out[count == 0] = np.nan
    return out
