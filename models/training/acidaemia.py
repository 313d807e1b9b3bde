"""The acidaemia-risk LSTM (``ctg_lstm``): cross-validated against simple baselines, then fitted on all records.

Steps: per CTU-UHB record the last hour before delivery as the model's window
(models/serving/features.py at 1 Hz) and the FIGO 2015 analysis of the same hour
(detectors.ctg) -> repeated stratified k-fold by record -> on every fold, in
the same run: the LSTM, the FIGO class alone (the acidaemia rate of each class
in the training folds) and a logistic regression on the FIGO features ->
out-of-fold probabilities pooled per repeat -> AUC per repeat (the spread), a
bootstrap 95% interval over records, Brier score and a reliability table.
The LSTM's settings are fixed before the folds are looked at (no search on
them), so the cross-validated figure is not tuned on its own test folds. The
model served is then fitted once on every record with the same settings.

Outcome: umbilical-artery pH < 7.05 (acidaemia) and < 7.15, docs/CLINICAL.md.
There are only 28 acidaemic records among 415, hence the repeats and intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from detectors.ctg import analyse_ctg
from detectors.scoring import auc
from models.serving.features import Normalisation, window_tensor
from models.training.data import Recording
from models.training.nets import AcidaemiaLstm

CLASS_RANK = {"normal": 0, "suspicious": 1, "pathological": 2, "insufficient_signal": 3}
FIGO_FEATURES = ("baseline_bpm", "variability_bpm", "valid_fraction", "accelerations", "early", "late", "variable",
                 "prolonged", "contractions_per_10min", "reduced_in_decelerations_s")


@dataclass
class AcidaemiaConfig:
    window_s: int = 3600
    hidden: int = 16
    dropout: float = 0.2
    epochs: int = 15
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    shifts_s: list[int] = field(default_factory=lambda: [0, 120, 240, 360, 480])  # training windows per record
    folds: int = 5
    repeats: int = 5
    seed: int = 0


@dataclass
class RecordInputs:
    record_id: str
    ph: float
    windows: np.ndarray  # [len(shifts), window_s, 4]: the last hour, and the hours ending a few minutes earlier
    figo: dict[str, float]
    classification: str


def prepare(records: list[Recording], cfg: AcidaemiaConfig) -> list[RecordInputs]:
    """The model windows and the FIGO features of each record with a pH (records without one are left out)."""
    norm = Normalisation(window_s=cfg.window_s)
    out = []
    for r in records:
        if r.ph is None:
            continue
        k = int(r.fs)
        wins = []
        for shift in cfg.shifts_s:
            end = r.fhr.size - shift * k
            a = max(0, end - cfg.window_s * k)
            wins.append(window_tensor(r.fhr[a:end], r.uc[a:end], None, r.fs, norm))
        hour = int(cfg.window_s * r.fs)
        analysis = analyse_ctg(r.fhr[-hour:], r.uc[-hour:], fs=r.fs)
        kinds = [d.kind for d in analysis.decelerations]
        figo = {
            "baseline_bpm": np.nan if analysis.baseline is None or analysis.baseline.value is None
            else float(analysis.baseline.value),
            "variability_bpm": np.nan if analysis.variability is None
            else float(getattr(analysis.variability, "median_bpm", np.nan) or np.nan),
            "valid_fraction": analysis.quality.valid_fraction,
            "accelerations": float(len(analysis.accelerations)),
            **{kind: float(kinds.count(kind)) for kind in ("early", "late", "variable", "prolonged")},
            "contractions_per_10min": np.nan if analysis.contractions_per_10min is None
            else float(analysis.contractions_per_10min),
            "reduced_in_decelerations_s": float(analysis.reduced_in_decelerations_s or 0.0),
        }
        out.append(RecordInputs(r.record_id, float(r.ph), np.stack(wins), figo, analysis.classification))
    return out


def labels(inputs: list[RecordInputs], cut: float) -> np.ndarray:
    return np.array([x.ph < cut for x in inputs], dtype=int)


# -- the three predictors, each fitted on training records and scoring held-out ones ----------

def fit_lstm(train: list[RecordInputs], cfg: AcidaemiaConfig, seed: int) -> AcidaemiaLstm:
    """Both outcomes at once (pH < 7.05, < 7.15), every shifted window of a record a training example."""
    x = torch.from_numpy(np.concatenate([t.windows for t in train]))
    y = np.repeat(np.stack([labels(train, 7.05), labels(train, 7.15)], axis=1), len(cfg.shifts_s), axis=0)
    return fit_lstm_on(x, y, cfg, seed)


def fit_lstm_on(x: torch.Tensor, y: np.ndarray, cfg: AcidaemiaConfig, seed: int, *, summaries: bool = False) -> AcidaemiaLstm:
    """The LSTM fitted on windows ``x`` (or their per-minute summaries) with labels ``y [N, 2]``."""
    torch.manual_seed(seed)
    model = AcidaemiaLstm(hidden=cfg.hidden, dropout=cfg.dropout)
    forward = model.summary_logits if summaries else model.logits
    target = torch.from_numpy(np.asarray(y, dtype=np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for b in range(0, len(x), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            last, _ = forward(x[idx])
            loss = F.binary_cross_entropy_with_logits(last, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict_lstm(model: AcidaemiaLstm, inputs: list[RecordInputs]) -> np.ndarray:
    """``[records, 2]`` probabilities from each record's last hour."""
    if not inputs:
        return np.zeros((0, 2))
    x = torch.from_numpy(np.stack([t.windows[0] for t in inputs]))
    return model(x)[0].numpy()


def class_rates(classes: Sequence[str], y: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """The outcome's rate in each class of training records, with a half-count prior: no class is 0 or 1."""
    chosen = np.asarray(classes)
    return {c: float((y[chosen == c].sum() + 0.5) / ((chosen == c).sum() + 1.0)) for c in names}


def figo_class_scores(train: list[RecordInputs], test: list[RecordInputs], cut: float) -> np.ndarray:
    """The acidaemia rate of each FIGO class (insufficient signal its own class) in the training records."""
    rate = class_rates([t.classification for t in train], labels(train, cut), CLASS_RANK)
    return np.array([rate[t.classification] for t in test])


def figo_matrix(inputs: list[RecordInputs], medians: dict[str, float] | None = None) -> tuple[np.ndarray, dict]:
    """FIGO features, missing values set to the training median with an indicator, plus the class one-hot."""
    if medians is None:
        medians = {k: float(np.nanmedian([t.figo[k] for t in inputs])) for k in FIGO_FEATURES}
    cols = []
    for k in FIGO_FEATURES:
        v = np.array([t.figo[k] for t in inputs], dtype=float)
        missing = ~np.isfinite(v)
        cols.append(np.where(missing, medians[k], v))
        if k in ("baseline_bpm", "variability_bpm", "contractions_per_10min"):
            cols.append(missing.astype(float))
    for cls in CLASS_RANK:
        cols.append(np.array([t.classification == cls for t in inputs], dtype=float))
    return np.stack(cols, axis=1), medians


def logistic_scores(train: list[RecordInputs], test: list[RecordInputs], cut: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, medians = figo_matrix(train)
    xte, _ = figo_matrix(test, medians)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    model.fit(xtr, labels(train, cut))
    return model.predict_proba(xte)[:, 1]


# -- cross-validation --------------------------------------------------------------------------

PREDICTORS = ("lstm", "figo_class", "logistic_figo")


def cross_validate(inputs: list[RecordInputs], cfg: AcidaemiaConfig,
                   log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities ``[repeats, records]`` per predictor and outcome (same folds for all)."""
    from sklearn.model_selection import StratifiedKFold

    y = labels(inputs, 7.05)
    out = {f"{p}@{cut}": np.zeros((cfg.repeats, len(inputs))) for p in PREDICTORS for cut in (7.05, 7.15)}
    for rep in range(cfg.repeats):
        folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed + rep)
        t0 = time.monotonic()
        for k, (tr, te) in enumerate(folds.split(np.zeros(len(y)), y)):
            train = [inputs[i] for i in tr]
            test = [inputs[i] for i in te]
            model = fit_lstm(train, cfg, seed=cfg.seed + 100 * rep + k)
            p = predict_lstm(model, test)
            for j, cut in enumerate((7.05, 7.15)):
                out[f"lstm@{cut}"][rep, te] = p[:, j]
                out[f"figo_class@{cut}"][rep, te] = figo_class_scores(train, test, cut)
                out[f"logistic_figo@{cut}"][rep, te] = logistic_scores(train, test, cut)
        log(f"acidaemia: repeat {rep + 1}/{cfg.repeats}: LSTM AUC(pH<7.05) "
            f"{auc(out['lstm@7.05'][rep][y == 1], out['lstm@7.05'][rep][y == 0]):.3f} ({time.monotonic() - t0:.0f} s)")
    return out


def bootstrap_auc_interval(scores: np.ndarray, y: np.ndarray, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95% interval of the AUC of ``scores`` (mean over repeats) by a stratified bootstrap over records."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    values = []
    for _ in range(n):
        p = scores[rng.choice(pos, pos.size)]
        q = scores[rng.choice(neg, neg.size)]
        values.append(auc(p, q))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def reliability(prob: np.ndarray, y: np.ndarray, bins: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)) -> list[dict]:
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (prob >= lo) & (prob < hi) if hi < 1.0 else (prob >= lo)
        rows.append({"bin": f"{lo:.2f}-{hi:.2f}", "records": int(sel.sum()),
                     "mean_predicted": round(float(prob[sel].mean()), 3) if sel.any() else None,
                     "observed": round(float(y[sel].mean()), 3) if sel.any() else None})
    return rows


def summarise(oof: dict[str, np.ndarray], inputs: list[RecordInputs], cfg: AcidaemiaConfig) -> dict:
    """Per predictor and outcome: AUC per repeat, its mean and range, bootstrap interval, Brier, reliability."""
    result: dict = {"records": len(inputs), "folds": cfg.folds, "repeats": cfg.repeats}
    for key, scores in oof.items():
        predictor, cut = key.split("@")
        y = labels(inputs, float(cut))
        per_repeat = [auc(s[y == 1], s[y == 0]) for s in scores]
        mean_scores = scores.mean(axis=0)
        lo, hi = bootstrap_auc_interval(mean_scores, y, cfg.seed)
        result[key] = {
            "positives": int(y.sum()), "auc_mean": round(float(np.mean(per_repeat)), 4),
            "auc_repeats": [round(float(a), 4) for a in per_repeat],
            "auc_ci95": [round(lo, 4), round(hi, 4)],
            "brier": round(float(np.mean((scores - y[None, :]) ** 2)), 4),
            "brier_prevalence": round(float(y.mean() * (1 - y.mean())), 4),
            "reliability": reliability(mean_scores, y),
        }
    return result


def export_acidaemia_onnx(model: AcidaemiaLstm, window_s: int, path: Path) -> None:
    import warnings

    example = torch.zeros(2, window_s, 4)
    example[..., 3] = 1.0
    with warnings.catch_warnings():
        # the LSTM warning concerns initial states passed per batch; ours start at zero for every window
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (example,), str(path), input_names=["window"], output_names=["risk", "risk_course"],
            dynamic_axes={"window": {0: "batch"}, "risk": {0: "batch"}, "risk_course": {0: "batch"}},
            opset_version=17, dynamo=False,
        )


def train_acidaemia(cfg: AcidaemiaConfig, records: list[Recording], out_dir: Path,
                    log: Callable[[str], None] = print) -> dict:
    """Cross-validate the LSTM beside the baselines, then fit it on every record and export it."""
    import json

    t_start = time.monotonic()
    inputs = prepare(records, cfg)
    log(f"acidaemia: {len(inputs)} records with a pH, {int(labels(inputs, 7.05).sum())} with pH < 7.05; "
        f"{cfg.repeats} x {cfg.folds}-fold stratified cross-validation")
    oof = cross_validate(inputs, cfg, log)
    metrics = summarise(oof, inputs, cfg)
    model = fit_lstm(inputs, cfg, seed=cfg.seed)
    torch.save(model.state_dict(), out_dir / "lstm.pt")
    export_acidaemia_onnx(model, cfg.window_s, out_dir / "lstm.onnx")
    folds = {"records": [x.record_id for x in inputs], "folds": cfg.folds, "repeats": cfg.repeats,
             "seeds": [cfg.seed + r for r in range(cfg.repeats)],
             "how": "sklearn StratifiedKFold(folds, shuffle=True, random_state=seed) on pH < 7.05, records in this order"}
    (out_dir / "lstm_folds.json").write_text(json.dumps(folds, indent=1))
    Normalisation(window_s=cfg.window_s).save(out_dir / "lstm_normalisation.json")
    metrics["train_seconds"] = round(time.monotonic() - t_start, 1)
    (out_dir / "lstm_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
