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
    if not valid.any():
        return np.full_like(x, np.nan)
    idx = np.arange(x.size)
    return np.interp(idx, idx[valid], x[valid])


def centred_counts(mask: np.ndarray, window: int) -> np.ndarray:
    """Per sample, how many True samples lie in the ``window`` centred on it (clipped at the edges)."""
    m = np.asarray(mask, dtype=bool)
    csum = np.concatenate(([0], np.cumsum(m, dtype=np.int64)))
    idx = np.arange(m.size)
    half = window // 2
    return csum[np.clip(idx + half + 1, 0, m.size)] - csum[np.clip(idx - half, 0, m.size)]
