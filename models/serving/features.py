"""Model input: a multichannel window at 1 Hz, normalised, with signal loss masked.

One function turns 4 Hz FHR/UC (and maternal HR where present) into the
tensor both anomaly models take, so training, offline evaluation and the
stream prepare windows identically:

- channels (last axis): ``fhr``, ``uc``, ``mhr``, ``fhr_valid``;
- FHR and maternal HR: ``(bpm - center) / scale`` with the normalisation stored
  with the model; lost seconds are 0 (the mean) and ``fhr_valid`` is 0 there,
  so the models learn to ignore them and the losses mask them out;
- UC: ``uc / uc_scale``.

Why 1 Hz: CTG features live on scales of seconds to minutes (FIGO: 15-s
accelerations, 3-min prolonged decelerations); 1 Hz keeps a 10-min window at
600 steps, cheap for an LSTM on a CPU, and is the rate the detectors use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detectors.baseline import to_1hz

CHANNELS = ("fhr", "uc", "mhr", "fhr_valid")
FHR, UC, MHR, VALID = range(4)
#: Channels of the autoencoder's multiscale view (models/training/nets.py builds it inside the graph; the
#: served config declares it): FHR below its level, amplitude, roughness, periodicity, baseline, UC.
VIEW_CHANNELS = 6


@dataclass(frozen=True)
class Normalisation:
    window_s: int = 600
    fhr_center: float = 140.0
    fhr_scale: float = 25.0
    uc_scale: float = 50.0
    min_valid_fraction: float = 0.5  # windows with less valid FHR are not scored (insufficient signal)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Normalisation:
        return cls(**json.loads(path.read_text()))


def window_tensor(
    fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None, fs: float, norm: Normalisation
) -> np.ndarray:
    """The last ``norm.window_s`` seconds as a ``[window_s, 4]`` float32 array (zero-padded in front)."""
    fhr = np.asarray(fhr, dtype=float)
    valid = np.isfinite(fhr) & (fhr > 0)
    f1, fv = to_1hz(fhr, valid, fs)
    u = np.nan_to_num(np.asarray(uc, dtype=float), nan=0.0)
    u1, _ = to_1hz(u, np.ones(u.size, bool), fs)
    if mhr is not None:
        m = np.asarray(mhr, dtype=float)
        m1, mv = to_1hz(m, np.isfinite(m) & (m > 0), fs)
    else:
        m1, mv = np.zeros_like(f1), np.zeros(f1.size, bool)
    out = np.zeros((norm.window_s, len(CHANNELS)), dtype=np.float32)
    n = min(norm.window_s, f1.size)
    if n == 0:
        return out
    sl = slice(f1.size - n, f1.size)
    dst = slice(norm.window_s - n, norm.window_s)
    out[dst, FHR] = np.where(fv[sl], (np.nan_to_num(f1[sl]) - norm.fhr_center) / norm.fhr_scale, 0.0)
    out[dst, UC] = np.nan_to_num(u1[sl]) / norm.uc_scale
    out[dst, MHR] = np.where(mv[sl], (np.nan_to_num(m1[sl]) - norm.fhr_center) / norm.fhr_scale, 0.0)
    out[dst, VALID] = fv[sl].astype(np.float32)
    return out


def windows_ending(fhr: np.ndarray, uc: np.ndarray, fs: float, ends_s: np.ndarray, norm: Normalisation) -> np.ndarray:
    """``[len(ends_s), window_s, 4]``: the window of ``norm.window_s`` ending at each time (s of the recording),
    zero-padded in front where the recording is shorter: what the stream scores at those moments."""
    k = int(fs)
    out = []
    for t in ends_s:
        b = int(t * k)
        a = max(0, b - norm.window_s * k)
        out.append(window_tensor(fhr[a:b], uc[a:b], None, fs, norm))
    return np.stack(out) if out else np.zeros((0, norm.window_s, len(CHANNELS)), np.float32)


def sliding_windows(
    fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None, fs: float, norm: Normalisation, stride_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every full window of a recording: ``([N, window_s, 4], end times in s)``; sparse ones skipped."""
    k = int(round(fs))
    total_s = len(fhr) // k
    ends = np.arange(norm.window_s, total_s + 1, stride_s)
    windows, kept = [], []
    for end in ends:
        a, b = (end - norm.window_s) * k, end * k
        w = window_tensor(fhr[a:b], uc[a:b], None if mhr is None else mhr[a:b], fs, norm)
        if w[:, VALID].mean() >= norm.min_valid_fraction:
            windows.append(w)
            kept.append(float(end))
    if not windows:
        return np.zeros((0, norm.window_s, len(CHANNELS)), np.float32), np.zeros(0)
    return np.stack(windows), np.array(kept)
