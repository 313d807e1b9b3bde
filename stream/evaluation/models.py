"""Score a trained version's served models on any directory of recordings (``ctgwatch evaluate models``).

The ONNX files of the version run through onnxruntime, exactly what Triton
serves, so an independent data set is scored by the deployed models with one
command:

- a WFDB directory with outcomes (CTU-UHB layout: ``NNNN.hea`` with ``#pH``):
  the acidaemia-risk LSTM on each record's last hour, the autoencoder (record
  score: the 90th percentile of its window scores every 60 s) and the FIGO
  class of the last hour, each as an AUC for pH < 7.05 and < 7.15 with a 95%
  bootstrap interval;
- an FHRMA directory (``annotations.json``): the false-signal model per sample,
  per subset, read out as the stream does (live) and with the whole recording
  (settled), beside the rule-based detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.labour import analyse_labour
from detectors.scoring import auc
from models.serving.false_signal_features import FalseSignalThresholds
from models.serving.features import Normalisation, sliding_windows, window_tensor
from models.training.acidaemia import CLASS_RANK, bootstrap_auc_interval
from models.training.data import load_ctu_uhb
from models.training.false_signal import FalseSignalConfig, Judge, evaluate_split, onnx_judge
from models.training.false_signal_data import load_fhrma
from stream.evaluation.quality import rules_confusion
from stream.evaluation.served import onnx_session, run_batched


def _auc_entry(scores: np.ndarray, y: np.ndarray) -> dict:
    ok = np.isfinite(scores)
    s, t = scores[ok], y[ok]
    if not (t == 1).any() or not (t == 0).any():
        return {"auc": None, "positives": int(t.sum()), "records": int(ok.sum())}
    lo, hi = bootstrap_auc_interval(s, t)
    return {"auc": round(auc(s[t == 1], s[t == 0]), 4), "ci95": [round(lo, 4), round(hi, 4)],
            "positives": int(t.sum()), "records": int(ok.sum())}


def score_wfdb(version_dir: Path, directory: Path, limit: int | None = None) -> dict:
    """AUCs per model and outcome on a WFDB directory with pH outcomes."""
    records = [r for r in load_ctu_uhb(directory, limit) if r.ph is not None]
    ph = np.array([r.ph for r in records])
    scores: dict[str, np.ndarray] = {}
    if (version_dir / "lstm.onnx").exists():
        risk_norm = Normalisation.load(version_dir / "lstm_normalisation.json")
        lstm = onnx_session(version_dir / "lstm.onnx")
        k = int(risk_norm.window_s * 4)
        batch = np.stack([window_tensor(r.fhr[-k:], r.uc[-k:], None, r.fs, risk_norm) for r in records])
        scores["ctg_lstm"] = run_batched(lstm, "risk", batch, 64)
    if (version_dir / "autoencoder.onnx").exists():
        norm = Normalisation.load(version_dir / "normalisation.json")
        ae = onnx_session(version_dir / "autoencoder.onnx")
        per = []
        for r in records:
            w, _ = sliding_windows(r.fhr, r.uc, None, r.fs, norm, 60)
            s = run_batched(ae, "score", w, 128)
            per.append(float(np.quantile(s, 0.9)) if s.size else np.nan)
        scores["ctg_autoencoder"] = np.array(per)
    figo = []
    for r in records:  # the whole-labour class at delivery, as the stream reads it
        a = analyse_labour(r.fhr, r.uc, fs=r.fs)
        figo.append(float(CLASS_RANK.get(a.classification, np.nan)) if a is not None else np.nan)
    scores["figo_class (normal<suspicious<pathological<insufficient)"] = np.array(figo)
    out: dict = {"records": len(records), "directory": str(directory), "version": version_dir.name, "models": {}}
    for name, s in scores.items():
        out["models"][name] = {f"pH<{cut}": _auc_entry(s, (ph < cut).astype(int)) for cut in (7.05, 7.15)}
    return out


def score_fhrma(version_dir: Path, directory: Path, names: list[str] | None = None) -> dict:
    """The false-signal model (live and settled) and the rules, per subset, on an FHRMA directory."""
    judge, thresholds, cfg, context_s = _false_signal_of(version_dir)
    records = load_fhrma(directory, names)
    result = evaluate_split(judge, records, thresholds, cfg, context_s=context_s)
    rules = rules_confusion(directory, [r.name for r in records])
    return {"records": len(records), "directory": str(directory), "version": version_dir.name,
            "ctg_false_signal": result, "rules": {k: c.as_dict() for k, c in rules.items()}}


def simulator_false_signal(version_dir: Path) -> dict:
    """The false-signal model's simulator safety check (models/training/false_signal.py), with the version's ONNX."""
    from models.training.false_signal import simulator_check

    judge, thresholds, cfg, context_s = _false_signal_of(version_dir)
    return {"version": version_dir.name, **thresholds.as_dict(), "seeds": [40, 41, 42, 43, 44],
            "scenarios": simulator_check(judge, thresholds, cfg, context_s=context_s)}


def _false_signal_of(version_dir: Path) -> tuple[Judge, FalseSignalThresholds, FalseSignalConfig, int]:
    """A version's false-signal model as the stream reads it out: (ONNX judge, thresholds, cadence, context)."""
    calibration = json.loads((version_dir / "calibration.json").read_text())["false_signal"]
    return (onnx_judge(version_dir / "false_signal.onnx"), FalseSignalThresholds.from_dict(calibration),
            FalseSignalConfig(cadence_s=int(calibration["cadence_s"]),
                              verdict_delay_s=int(calibration.get("verdict_delay_s", 0))),
            int(calibration["context_s"]))


def kind_of(directory: Path) -> str:
    if (directory / "annotations.json").is_file():
        return "fhrma"
    if any(directory.glob("*.hea")):
        return "wfdb"
    raise ValueError(f"{directory}: neither an FHRMA directory (annotations.json) nor WFDB records (*.hea)")


