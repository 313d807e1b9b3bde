"""Reading the FHRMA false-signal recordings (Boudet et al., Biosensors 2022;12:691).

Experts marked which stretches of each FHR trace are true fetal signal and
which are false (mostly the maternal heart rate, or its double/half). Files
are ``.fhrm`` (4-byte header, 8-byte records at 4 Hz); the marks are in
``annotations.json`` beside the ``DopMHR/`` and ``ScalpECG/`` folders. Read
from a local directory only; this module knows no broker, so training code
may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FHRM_DTYPE = np.dtype([("fhr1", "<u2"), ("fhr2", "<u2"), ("mhr", "<u2"), ("toco", "u1"), ("flags", "u1")])


@dataclass(frozen=True)
class FhrmRecord:
    name: str
    fhr: np.ndarray
    mhr: np.ndarray
    toco: np.ndarray


def read_fhrm(path: Path) -> FhrmRecord:
    """An FHRMA ``.fhrm`` file: 4-byte header, then 8-byte records at 4 Hz.

    The FHR is the sensor that carries the signal: sensor 1 in the Doppler
    recordings, sensor 2 in most scalp-ECG ones.
    """
    raw = np.frombuffer(path.read_bytes()[4:], dtype=FHRM_DTYPE)
    channel = "fhr1" if np.count_nonzero(raw["fhr1"]) >= np.count_nonzero(raw["fhr2"]) else "fhr2"
    return FhrmRecord(path.name, raw[channel] / 4.0, raw["mhr"] / 4.0, raw["toco"] / 2.0)


def label_samples(n: int, true_spans: list, false_spans: list) -> np.ndarray:
    """Per sample: 1 false signal, 0 true signal, -1 not marked (spans 1-based, inclusive)."""
    labels = np.full(n, -1, dtype=np.int8)
    for value, spans in ((0, true_spans), (1, false_spans)):
        for a, b in spans:
            labels[max(int(a) - 1, 0) : min(int(b), n)] = value
    return labels
