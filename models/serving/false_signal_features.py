"""Input of the false-signal model: 4 Hz FHR and maternal HR -> per-second features.

One function prepares the tensor for training, offline evaluation and the
stream, so they can never drift apart. Why these channels:

- the FHR and the maternal HR themselves (normalised like the anomaly
  models), each with its validity mask: a false signal is most often the
  maternal rate, so the network must see both;
- their difference and the log2 ratio: capture shows as a difference near 0,
  halving / doubling as a ratio near -1 / +1 (of the FHR to its own recent
  course, or to the maternal rate);
- the second-to-second step and the spread of the four samples within each
  second: a maternal or doubled trace is entered by a jump, and Doppler
  capture has a texture of its own;
- the sensor (ultrasound, scalp ECG or unknown): false signals look different
  on each (Boudet et al., Biosensors 2022;12:691, trained one network for both
  with the sensor as an input too);
- UC: pushing and contractions raise the maternal rate.

The FHRMA recordings carry no monitor quality flags (their flag bytes are all
zero), so the model does not take the packet's ``fhr_quality``; feeding it a
channel it never saw in training would be guesswork.

The decision is two thresholds on the per-second probability
(:class:`FalseSignalThresholds`): one where the maternal channel gave a value
and one, higher, where it did not (from v8).

Everything is at 1 Hz (a second is valid when half its samples are): false
stretches last tens of seconds to many minutes, and 1 Hz keeps a 10-min window
at 600 steps. Verdicts go back to 4 Hz by repeating each second.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from detectors.baseline import to_1hz

SensorKind = Literal["ultrasound", "fecg", "unknown"]
FEATURES = ("fhr", "fhr_valid", "mhr", "mhr_valid", "fhr_minus_mhr", "log2_fhr_over_mhr", "fhr_step",
            "fhr_spread", "sensor_fecg", "sensor_known", "uc")
N_FEATURES = len(FEATURES)
MHR_VALID = FEATURES.index("mhr_valid")
FS = 4.0


@dataclass(frozen=True)
class FalseSignalShape:
    """Window length served and normalisation, stored with the model.

    10 min: longer than the convolutions' reach (511 s) plus the scoring
    interval (60 s), so each second's last verdict sees as far as the whole
    recording would (stream/worker/false_signal.py).
    """

    window_s: int = 600
    center: float = 140.0
    scale: float = 25.0
    uc_scale: float = 50.0

    def as_dict(self) -> dict:
        return asdict(self)


def _valid_rate(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x > 0)


def false_signal_inputs(fhr: np.ndarray, mhr: np.ndarray | None, uc: np.ndarray | None, sensor: SensorKind,
                        shape: FalseSignalShape = FalseSignalShape(), fs: float = FS) -> np.ndarray:
    """Per-second features ``[seconds, N_FEATURES]`` (float32) of a whole 4 Hz recording or window.

    Parameters
    ----------
    fhr, mhr, uc : 4 Hz arrays (bpm; 0 or NaN = no signal); ``mhr``/``uc`` may be None.
    sensor : the FHR sensor ("ultrasound" = Doppler, "fecg" = scalp electrode, "unknown").
    """
    fhr = np.asarray(fhr, dtype=float)
    k = max(1, int(round(fs)))
    n_s = fhr.size // k
    out = np.zeros((n_s, N_FEATURES), dtype=np.float32)
    if n_s == 0:
        return out
    fv4 = _valid_rate(fhr)
    f1, fv = to_1hz(fhr, fv4, fs)
    if mhr is not None:
        m4 = np.asarray(mhr, dtype=float)
        m1, mv = to_1hz(m4, _valid_rate(m4), fs)
    else:
        m1, mv = np.full(n_s, np.nan), np.zeros(n_s, bool)
    both = fv & mv
    f = np.nan_to_num(f1)
    m = np.nan_to_num(m1)
    out[:, 0] = np.where(fv, (f - shape.center) / shape.scale, 0.0)
    out[:, 1] = fv
    out[:, 2] = np.where(mv, (m - shape.center) / shape.scale, 0.0)
    out[:, 3] = mv
    out[:, 4] = np.where(both, (f - m) / shape.scale, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 5] = np.where(both, np.clip(np.log2(np.where(both, f / np.where(m > 0, m, 1.0), 1.0)), -2, 2), 0.0)
    step = np.zeros(n_s)
    step[1:] = np.where(fv[1:] & fv[:-1], f[1:] - f[:-1], 0.0)
    out[:, 6] = np.clip(step / shape.scale, -4, 4)
    x4 = np.where(fv4[: n_s * k], fhr[: n_s * k], np.nan).reshape(n_s, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN seconds: no signal, spread 0
        spread = np.nanmax(x4, axis=1) - np.nanmin(x4, axis=1)
    out[:, 7] = np.where(fv, np.clip(np.nan_to_num(spread) / 10.0, 0, 4), 0.0)
    out[:, 8] = 1.0 if sensor == "fecg" else 0.0
    out[:, 9] = 0.0 if sensor == "unknown" else 1.0
    if uc is not None:
        u = np.nan_to_num(np.asarray(uc, dtype=float))
        u1, _ = to_1hz(u, np.ones(u.size, bool), fs)
        out[: u1.size, 10] = np.nan_to_num(u1[:n_s]) / shape.uc_scale
    return out


def window_inputs(features: np.ndarray, window_s: int) -> np.ndarray:
    """The last ``window_s`` seconds of per-second features, zero-padded in front (padding is invalid)."""
    out = np.zeros((window_s, features.shape[1]), dtype=np.float32)
    n = min(window_s, features.shape[0])
    if n:
        out[window_s - n:] = features[features.shape[0] - n:]
    return out


def labels_per_second(labels_4hz: np.ndarray, fs: float = FS) -> np.ndarray:
    """Expert marks at 1 Hz: 1 false, 0 true, -1 unmarked (a second is false when half its samples are)."""
    k = max(1, int(round(fs)))
    n_s = labels_4hz.size // k
    lab = labels_4hz[: n_s * k].reshape(n_s, k)
    marked = (lab >= 0).sum(axis=1)
    false = (lab == 1).sum(axis=1)
    return np.where(marked * 2 >= k, (false * 2 >= marked).astype(np.int8), -1).astype(np.int8)


def to_samples(per_second: np.ndarray, n_samples: int, fs: float = FS) -> np.ndarray:
    """Per-second values repeated to ``n_samples`` at ``fs`` (the last partial second takes the last value)."""
    k = max(1, int(round(fs)))
    out = np.repeat(per_second, k)
    if out.size >= n_samples:
        return out[:n_samples]
    fill = per_second[-1] if per_second.size else 0
    return np.concatenate([out, np.full(n_samples - out.size, fill, dtype=out.dtype)])


@dataclass(frozen=True)
class FalseSignalThresholds:
    """Where a per-second probability becomes "not fetal": one threshold with a maternal reference, one without.

    Why two: with the maternal HR beside it, the network sees a capture directly (the
    two rates coincide); without it, only the trace's own shape speaks, and a fetal
    deceleration to 70-100 bpm looks much like the mother's rate. On the FHRMA tuning
    part, most of v7's false positives (fetal seconds judged false) lay in such
    stretches: seconds without a maternal value, FHR well below the normal range
    (docs/EVALUATION.md, "False-signal model v8"). Calling them false leaves a
    deceleration out of the FIGO analysis, so the model must be surer there. One
    function decides for training, offline evaluation and the stream alike.
    """

    with_maternal: float
    without_maternal: float

    @classmethod
    def of(cls, threshold: float, without_maternal: float | None = None) -> FalseSignalThresholds:
        """The pair a served config or a calibration gives; without a second threshold (versions up to v7),
        ``threshold`` for every second."""
        return cls(float(threshold), float(threshold if without_maternal is None else without_maternal))

    @classmethod
    def from_dict(cls, values: dict) -> FalseSignalThresholds:
        """From ``as_dict``'s keys: a ``choose_thresholds`` result, a version's calibration or a served
        config's parameters."""
        return cls.of(values["threshold"], values.get("threshold_without_maternal"))

    def false_seconds(self, p: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Per-second verdicts (True = not fetal) for probabilities ``p`` and the features they came from.

        ``features`` holds at least ``p.size`` rows, aligned with ``p`` from the first
        (``false_signal_inputs``); its ``mhr_valid`` column says which threshold applies.
        """
        p = np.asarray(p, dtype=float)
        maternal = np.asarray(features)[: p.size, MHR_VALID] > 0
        return p >= np.where(maternal, self.with_maternal, self.without_maternal)

    def as_dict(self) -> dict[str, float]:
        return {"threshold": self.with_maternal, "threshold_without_maternal": self.without_maternal}
