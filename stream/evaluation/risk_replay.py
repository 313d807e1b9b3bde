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
from models.serving.compromise import AUTOENCODER_HISTORY_MIN, Stacker, risk_finding, risk_inputs
from models.serving.features import Normalisation, windows_ending
from stream.evaluation.served import onnx_session, run_batched, served_onnx

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


def served_record(stacker: Stacker, repository: Path, fhr: np.ndarray, uc: np.ndarray, fs: float,
                  first_s: float = 600.0) -> RecordRisk:
    """The served models on each minute of a recording (their ONNX files in the Triton repository)."""
    times = np.arange(first_s, fhr.size / fs + 1e-6, 60.0)
    lstm_in = windows_ending(fhr, uc, fs, times, Normalisation(window_s=3600))
    ae_in = windows_ending(fhr, uc, fs, times, Normalisation(window_s=600))
    risk = run_batched(onnx_session(served_onnx(repository, "ctg_lstm")), "risk", lstm_in, 64)
    score = run_batched(onnx_session(served_onnx(repository, "ctg_autoencoder")), "score", ae_in, 128)
    return RecordRisk(stacker, times, lstm=risk, autoencoder=score / stacker.autoencoder_reference)
