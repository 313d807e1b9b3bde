"""The compromise risk inside the alarm replay: what the worker's model round would report each minute.

Two sources, so ``ctgwatch evaluate burden`` can judge the risk alarm on any CTU-UHB-format directory:

- **out of fold** (the project's records): the per-minute risks of the cross-fitting
  (``ctgwatch evaluate risk`` writes them to ``<models dir>/compromise-oof.json``); no record is
  judged by a model that saw it;
- **served** (any other record): the served LSTM and autoencoder (ONNX, what Triton serves) on the
  hour and the 10 min ending at each minute, and the served stacker on the analysis the replay shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.ctg import CtgAnalysis
from detectors.findings import Finding
from models.compromise import AUTOENCODER_HISTORY_MIN, INPUT_NAMES, Stacker, risk_finding, risk_inputs
from models.features import Normalisation, window_tensor

OOF_FILE = "compromise-oof.json"


@dataclass
class RecordRisk:
    """One record's risk, minute by minute: given (out of fold) or computed from the models' outputs."""

    stacker: Stacker
    times: np.ndarray
    given: dict[str, np.ndarray] | None = None  # per outcome, per minute (out of fold)
    given_inputs: np.ndarray | None = None  # [minutes, inputs]: what the out-of-fold risk read
    lstm: np.ndarray | None = None  # served path: the LSTM's P(pH < 7.05) per minute
    autoencoder: np.ndarray | None = None  # served path: per-minute scores over the reference
    last_risk: float | None = None

    def risk_at_delivery(self) -> float | None:
        """The pH < 7.05 risk at the last minute replayed."""
        if self.given is not None:
            v = self.given["ph_below_7_05"]
            return float(v[-1]) if v.size else None
        return self.last_risk

    def findings_at(self, t: float, analysis: CtgAnalysis) -> list[Finding]:
        hits = np.flatnonzero(np.isclose(self.times, t))
        if not hits.size:
            return []
        i = int(hits[0])
        if self.given is not None and self.given_inputs is not None:
            risks = {o: float(v[i]) for o, v in self.given.items()}
            _, finding = risk_finding(self.stacker, self.given_inputs[i], t, risks)
        else:
            assert self.lstm is not None and self.autoencoder is not None
            raw = risk_inputs(analysis, float(self.lstm[i]), self.autoencoder[max(0, i + 1 - AUTOENCODER_HISTORY_MIN):i + 1])
            risks, finding = risk_finding(self.stacker, raw, t)
            self.last_risk = risks["ph_below_7_05"]
        return [] if finding is None else [finding]


def load_oof(models_dir: Path) -> dict[str, dict[str, Any]] | None:
    path = models_dir / OOF_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def oof_record(stacker: Stacker, entry: dict[str, Any]) -> RecordRisk:
    return RecordRisk(stacker, np.asarray(entry["times"], float),
                      given={o: np.asarray(v, float) for o, v in entry["risk"].items()},
                      given_inputs=np.array([[np.nan if v is None else v for v in row] for row in entry["inputs"]], float))


_SESSIONS: dict[str, Any] = {}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    key = str(path)
    if key not in _SESSIONS:
        _SESSIONS[key] = ort.InferenceSession(key, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def served_record(stacker: Stacker, repository: Path, fhr: np.ndarray, uc: np.ndarray, fs: float,
                  first_s: float = 600.0) -> RecordRisk:
    """The served models on each minute of a recording (their ONNX files in the Triton repository)."""
    k = int(fs)
    times = np.arange(first_s, fhr.size / fs + 1e-6, 60.0)
    hour, ten = Normalisation(window_s=3600), Normalisation(window_s=600)
    lstm_in = np.stack([window_tensor(fhr[max(0, int(t * k) - 3600 * k):int(t * k)], uc[max(0, int(t * k) - 3600 * k):int(t * k)],
                                      None, fs, hour) for t in times]) if times.size else np.zeros((0, 3600, 4), np.float32)
    ae_in = np.stack([window_tensor(fhr[max(0, int(t * k) - 600 * k):int(t * k)], uc[max(0, int(t * k) - 600 * k):int(t * k)],
                                    None, fs, ten) for t in times]) if times.size else np.zeros((0, 600, 4), np.float32)
    lstm = _session(_served(repository, "ctg_lstm"))
    ae = _session(_served(repository, "ctg_autoencoder"))
    risk = np.concatenate([lstm.run(["risk"], {"window": lstm_in[i:i + 64]})[0][:, 0] for i in range(0, len(lstm_in), 64)]) \
        if len(lstm_in) else np.zeros(0)
    score = np.concatenate([ae.run(["score"], {"window": ae_in[i:i + 128]})[0][:, 0] for i in range(0, len(ae_in), 128)]) \
        if len(ae_in) else np.zeros(0)
    return RecordRisk(stacker, times, lstm=risk, autoencoder=score / stacker.autoencoder_reference)


def _served(repository: Path, model: str) -> Path:
    """The newest version of a model in a Triton repository (what Triton serves by default)."""
    versions = sorted((p for p in (repository / model).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        raise FileNotFoundError(f"no version of {model} in {repository}")
    return versions[-1] / "model.onnx"


__all__ = ["INPUT_NAMES", "OOF_FILE", "RecordRisk", "load_oof", "oof_record", "served_record"]
