"""FHRMA recordings as training and evaluation data for the false-signal model.

Each annotated recording becomes per-second features (models/serving/false_signal_features.py)
and per-second expert labels. The split is by recording, stratified by subset
(Doppler ``DopMHR`` / scalp ECG ``ScalpECG``), from a fixed seed, and written
with every trained version, so no recording is ever in two parts:

- ``train``: fits the weights;
- ``tuning``: chooses the epoch and the decision threshold;
- ``validation``: scored once per version, never used to choose anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.serving.false_signal_features import FalseSignalShape, SensorKind, false_signal_inputs, labels_per_second
from stream.sources.fhrma import label_samples, read_fhrm

SUBSETS = ("DopMHR", "ScalpECG")
SPLITS = ("train", "tuning", "validation")


@dataclass
class FalseSignalRecording:
    name: str
    subset: str
    sensor: SensorKind
    fhr: np.ndarray  # 4 Hz, bpm, 0 = loss
    mhr: np.ndarray
    uc: np.ndarray
    labels: np.ndarray  # 4 Hz: 1 false, 0 true, -1 unmarked
    features: np.ndarray  # [seconds, F]
    labels_s: np.ndarray  # [seconds]


def subset_of(name: str) -> str:
    return "DopMHR" if name.startswith("DopMHR") else "ScalpECG"


def sensor_of(subset: str) -> SensorKind:
    return "fecg" if subset == "ScalpECG" else "ultrasound"


def annotated_names(directory: Path) -> list[str]:
    """Names of the recordings that carry expert marks and exist on disk, in name order."""
    annotations = json.loads((directory / "annotations.json").read_text())
    return [name for name, ann in sorted(annotations.items())
            if (ann.get("true_fhr") or ann.get("false_fhr")) and (directory / subset_of(name) / name).exists()]


def load_recording(directory: Path, name: str, annotation: dict | None = None,
                   shape: FalseSignalShape = FalseSignalShape()) -> FalseSignalRecording:
    subset = subset_of(name)
    rec = read_fhrm(directory / subset / name)
    ann = annotation if annotation is not None else json.loads((directory / "annotations.json").read_text()).get(name, {})
    labels = label_samples(rec.fhr.size, ann.get("true_fhr", []), ann.get("false_fhr", []))
    mhr = np.where(rec.mhr > 0, rec.mhr, 0.0)
    features = false_signal_inputs(rec.fhr, mhr, rec.toco, sensor_of(subset), shape)
    labels_s = labels_per_second(labels)
    labels_s = np.where(features[:, 1] > 0, labels_s, -1).astype(np.int8)  # no verdict on lost seconds
    return FalseSignalRecording(name, subset, sensor_of(subset), rec.fhr, mhr, rec.toco, labels, features, labels_s)


def load_fhrma(directory: Path, names: list[str] | None = None,
               shape: FalseSignalShape = FalseSignalShape()) -> list[FalseSignalRecording]:
    annotations = json.loads((directory / "annotations.json").read_text())
    return [load_recording(directory, n, annotations.get(n, {}), shape) for n in names or annotated_names(directory)]


def split_names(names: list[str], seed: int, fractions: tuple[float, float] = (0.1, 0.2)) -> dict[str, list[str]]:
    """Record-level split, stratified by subset: ``fractions`` = (tuning, validation); the rest trains."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    rng = np.random.default_rng(seed)
    for subset in SUBSETS:
        group = sorted(n for n in names if subset_of(n) == subset)
        order = rng.permutation(len(group))
        n_tune = int(round(fractions[0] * len(group)))
        n_val = int(round(fractions[1] * len(group)))
        out["tuning"] += [group[i] for i in order[:n_tune]]
        out["validation"] += [group[i] for i in order[n_tune:n_tune + n_val]]
        out["train"] += [group[i] for i in order[n_tune + n_val:]]
    return {k: sorted(v) for k, v in out.items()}
