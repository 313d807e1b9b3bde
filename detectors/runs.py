"""Run-length helpers over boolean masks: the building block of every
"X for more than N seconds" rule."""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> np.ndarray:
    """Start and end (exclusive) indices of each run of True, shape (n, 2)."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    padded = np.concatenate(([False], m, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges.reshape(-1, 2)


def close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill False gaps of at most ``max_gap`` samples lying between two True runs."""
    m = np.asarray(mask, dtype=bool).copy()
    if max_gap <= 0:
        return m
    for start, end in runs(~m):
        if start > 0 and end < m.size and end - start <= max_gap:
            m[start:end] = True
    return m


def drop_short(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Keep only runs of True that are at least ``min_len`` samples long."""
    out = np.zeros_like(np.asarray(mask, dtype=bool))
    for start, end in runs(mask):
        if end - start >= min_len:
            out[start:end] = True
    return out


def interpolate_gaps(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over invalid samples (edges held); all-invalid gives NaN."""
    x = np.asarray(x, dtype=float)
    valid = np.asarray(valid, dtype=bool)
    count = np.count_nonzero(valid)
    if count == 0:
        return np.full_like(x, np.nan)
    if count == x.size:  # nothing to fill: np.interp at its own points gives the same values back
        return x.copy()
    idx = np.arange(x.size)
    return np.interp(idx, idx[valid], x[valid])


def true_fraction(mask: np.ndarray) -> float:
    """``mask.mean()`` of a boolean mask: the same number (a whole count over the length), counted rather
    than summed as floats, which costs a FIGO analysis less (it asks this per segment)."""
    m = np.asarray(mask, dtype=bool)
    return np.count_nonzero(m) / m.size


def row_true_fractions(rows: np.ndarray) -> np.ndarray:
    """``rows.mean(axis=1)`` of a 2-D boolean mask, counted (the same numbers, as :func:`true_fraction`)."""
    m = np.asarray(rows, dtype=bool)
    return np.count_nonzero(m, axis=1) / m.shape[1]


def centred_counts(mask: np.ndarray, window: int) -> np.ndarray:
    """Per sample, how many True samples lie in the ``window`` centred on it (clipped at the edges)."""
    m = np.asarray(mask, dtype=bool)
    n = m.size
    csum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(m, dtype=np.int64, out=csum[1:])
    half = window // 2
    # The window's end and start per sample, clipped to the trace (np.minimum/np.maximum in place:
    # np.clip's dispatch cost more than the arithmetic, and this runs four times per analysis).
    upper = np.minimum(np.arange(half + 1, n + half + 1), n)
    lower = np.maximum(np.arange(-half, n - half), 0)
    return csum[upper] - csum[lower]
