"""Fit the compromise risk by cross-fitting, so every reported figure is out of fold.

The stacker (:mod:`models.serving.compromise`) reads the LSTM's and the autoencoder's outputs. Fitted on
outputs those models gave for their own training records it would trust them far too much, so
both are refitted inside every fold, by cross-fitting:

1. repeated stratified k-fold by record (5 x 5, stratified on pH < 7.05, the seeds of
   ``models.training.acidaemia``);
2. in each outer fold, the training records are split again in ``inner_folds`` (5, stratified); the
   LSTM and the autoencoder are fitted on all but one (the same recipes and settings as the served
   ones, fixed before any fold was looked at) and score the one left out: every training minute's
   model inputs come from models that never saw that record, fitted on as many records as the served
   stacker's were;
3. the stacker (logistic regression per outcome, ``C`` fixed beforehand) is fitted on the training
   records' minutes, every ``snapshot_every_min`` minutes, each record weighing the same;
4. the held-out fold's minutes are scored with the inner folds' models averaged, then the stacker.

On the same folds, the baselines: the LSTM fitted on all the fold's training records, as served
(risk at delivery), the FIGO class alone and a logistic regression on the whole-labour FIGO inputs.

The served stacker is fitted the same way on all records (one 5-fold cross-fitting for its model
inputs) and runs with the served LSTM and autoencoder.

Arrays in, arrays out: the records come replayed (:mod:`stream.evaluation.risk_data`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from models.serving.compromise import AUTOENCODER_HISTORY_MIN, INPUT_NAMES, OUTCOMES, RISK_INPUTS, Stacker, model_inputs
from models.serving.features import Normalisation
from models.training.acidaemia import AcidaemiaConfig, class_rates, fit_lstm_on
from models.training.nets import AcidaemiaLstm

LSTM_COL, AE_COL = INPUT_NAMES.index("lstm"), INPUT_NAMES.index("autoencoder")
#: The inputs the models give (:func:`with_models` fills them); the rest come from the FIGO analysis and
#: signal quality. An input computed from the models' per-minute outputs belongs here too.
MODEL_INPUTS = ("lstm", "autoencoder")
FIGO_COLS = [i for i, n in enumerate(INPUT_NAMES) if n not in MODEL_INPUTS]
CUTS = {"ph_below_7_05": 7.05, "ph_below_7_15": 7.15}


class Series(Protocol):
    """What cross-fitting reads of one replayed record (:class:`stream.evaluation.risk_data.RecordSeries`)."""

    record_id: str
    ph: float
    normal_outcome: bool
    times: np.ndarray
    figo: np.ndarray
    lstm_summaries: np.ndarray
    ae_windows: np.ndarray
    lstm_train: np.ndarray
    ae_train: np.ndarray


@dataclass
class CompromiseConfig:
    folds: int = 5
    repeats: int = 5
    seed: int = 0
    snapshot_every_min: int = 5  # the stacker's training minutes
    #: Inner folds of the cross-fitting: the LSTM and autoencoder behind a training record's inputs saw
    #: (k-1)/k of the fold's other records, as the served stacker's did (served_stacker: 5-fold).
    inner_folds: int = 5
    c: float = 0.1  # logistic regression: inverse L2 strength, fixed before any fold was scored
    ae_epochs: int = 10  # the served autoencoder's recipe (models.training.versions.TrainConfig)
    ae_max_windows: int = 12000
    lstm: AcidaemiaConfig = field(default_factory=AcidaemiaConfig)


# -- level one: the LSTM and the autoencoder, fitted on some records, scoring others -------------

def _labels(series: Sequence[Series]) -> np.ndarray:
    return np.array([[s.ph < 7.05, s.ph < 7.15] for s in series], dtype=np.float32)


def fit_lstm(train: Sequence[Series], cfg: CompromiseConfig, seed: int) -> AcidaemiaLstm:
    x = torch.from_numpy(np.concatenate([s.lstm_train for s in train]))
    y = np.repeat(_labels(train), [len(s.lstm_train) for s in train], axis=0)
    return fit_lstm_on(x, y, cfg.lstm, seed, summaries=True)


@torch.no_grad()
def lstm_risk(model: Any, series: Sequence[Series]) -> list[np.ndarray]:
    """P(pH < 7.05) at every minute of each record (the hour ending there)."""
    out = []
    for s in series:
        if not len(s.times):
            out.append(np.zeros(0))
            continue
        last, _ = model.summary_logits(torch.from_numpy(s.lstm_summaries))
        out.append(torch.sigmoid(last[:, 0]).numpy().astype(float))
    return out


def fit_autoencoder(train: Sequence[Series], cfg: CompromiseConfig, seed: int) -> tuple[torch.nn.Module, float]:
    """The autoencoder's recipe on these records' normal windows, and its reference score.

    The reference (the median score of its own training windows) puts every fitted autoencoder on one
    scale: scores are read as "times the error of a typical normal window", whichever fit gave them.
    """
    from models.training.versions import TrainConfig, fit, scores

    windows = np.concatenate([s.ae_train for s in train if len(s.ae_train)])
    rng = np.random.default_rng(seed)
    if len(windows) > cfg.ae_max_windows:
        windows = windows[rng.choice(len(windows), cfg.ae_max_windows, replace=False)]
    tc = TrainConfig(seed=seed, epochs=cfg.ae_epochs)
    model = fit("autoencoder", tc.autoencoder, Normalisation(window_s=600), windows, tc, log=lambda _: None)
    return model, float(np.median(scores(model, windows)))


def autoencoder_feature(fitted: tuple[Any, float], series: Sequence[Series]) -> list[np.ndarray]:
    """At every minute, the 90th percentile of the autoencoder's per-minute scores over the last hour,
    over its reference score."""
    from models.training.versions import scores

    model, reference = fitted
    out = []
    for s in series:
        per_minute = scores(model, s.ae_windows) / reference if len(s.times) else np.zeros(0)
        out.append(rolling_p90(per_minute, AUTOENCODER_HISTORY_MIN))
    return out


def rolling_p90(values: np.ndarray, n: int) -> np.ndarray:
    """The 90th percentile of the last ``n`` values at every position (as the worker keeps them)."""
    return np.array([np.quantile(values[max(0, i + 1 - n):i + 1], 0.9) for i in range(values.size)])


# -- level two: the stacker -----------------------------------------------------------------------

def training_minutes(series: Sequence[Series], every: int) -> list[np.ndarray]:
    """Which minutes of each record train the stacker: every ``every``-th, counted back from the last."""
    return [np.arange(len(s.times))[::-1][::every][::-1] for s in series]


def fit_stacker(inputs: list[np.ndarray], series: Sequence[Series], cfg: CompromiseConfig,
                columns: Sequence[int] | None = None) -> Stacker:
    """Logistic regressions (one per outcome) on the chosen minutes, each record weighing one in all, the
    weights' signs as :data:`models.serving.compromise.RISK_INPUTS` fixes them."""
    chosen = training_minutes(series, cfg.snapshot_every_min)
    rows = [x[c] for x, c in zip(inputs, chosen)]
    x = model_inputs(np.concatenate(rows))
    weights = np.concatenate([np.full(len(c), 1.0 / max(1, len(c))) for c in chosen])
    keep = np.ones(len(INPUT_NAMES), bool) if columns is None else np.isin(np.arange(len(INPUT_NAMES)), columns)
    center = np.where(keep, np.nan_to_num(np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)), 0.0)
    scale = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
    scale = np.where(keep & np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
    z = np.where(np.isfinite(x), (x - center) / scale, 0.0) * keep
    normal = np.concatenate([np.full(len(c), s.normal_outcome) for c, s in zip(chosen, series)])
    reference = np.nanmedian(np.where(np.isfinite(np.concatenate(rows)[normal]), np.concatenate(rows)[normal], np.nan),
                             axis=0)
    stacker = Stacker(center=center, scale=scale, weights={}, intercepts={}, reference=reference)
    signs = np.array([spec.sign for spec in RISK_INPUTS]) * keep
    for outcome, cut in CUTS.items():
        y = np.concatenate([np.full(len(c), s.ph < cut) for c, s in zip(chosen, series)]).astype(float)
        w, b = sign_constrained_logistic(z, y, weights, signs, keep, cfg.c)
        stacker.weights[outcome] = w
        stacker.intercepts[outcome] = b
    return stacker


def sign_constrained_logistic(z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, signs: np.ndarray,
                              keep: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression (sklearn's objective: ``0.5 |w|^2 + C * sum(s_i * loss_i)``) with each
    weight's sign bounded: >= 0 where ``signs`` is +1, <= 0 where -1, free where 0, and 0 where not ``keep``."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    n = z.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:n], theta[n]
        m = z @ w + b
        loss = -(y * log_expit(m) + (1 - y) * log_expit(-m))
        r = sample_weight * (expit(m) - y)
        return 0.5 * float(w @ w) + c * float(sample_weight @ loss), np.append(w + c * (z.T @ r), c * r.sum())

    bounds = [((0.0, 0.0) if not k else (0.0, None) if sg > 0 else (None, 0.0) if sg < 0 else (None, None))
              for sg, k in zip(signs, keep)] + [(None, None)]
    result = minimize(objective, np.zeros(n + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:n], float(result.x[n])


def with_models(series: Sequence[Series], lstm: list[np.ndarray], ae: list[np.ndarray]) -> list[np.ndarray]:
    """Each record's per-minute inputs with the models' columns filled in."""
    out = []
    for s, p, a in zip(series, lstm, ae):
        x = s.figo.copy()
        x[:, LSTM_COL] = p
        x[:, AE_COL] = a
        out.append(x)
    return out


def _inner_folds(idx: np.ndarray, y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return [(idx[a], idx[b]) for a, b in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(idx)), y[idx])]


def cross_fitted_inputs(series: Sequence[Series], train: np.ndarray, score: np.ndarray, cfg: CompromiseConfig,
                        seed: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Model inputs for the ``train`` records (each from the inner fold's models that did not see it) and for
    ``score`` (every inner fold's models averaged)."""
    y = (np.array([s.ph for s in series]) < 7.05).astype(int)
    train_inputs: dict[int, np.ndarray] = {}
    score_parts: dict[int, list[np.ndarray]] = {int(i): [] for i in score}
    for h, (fit_on, other) in enumerate(_inner_folds(train, y, cfg.inner_folds, seed)):
        fit_series = [series[i] for i in fit_on]
        lstm = fit_lstm(fit_series, cfg, seed + h)
        ae = fit_autoencoder(fit_series, cfg, seed + h)
        targets = np.concatenate([other, score])
        target_series = [series[i] for i in targets]
        filled = with_models(target_series, lstm_risk(lstm, target_series), autoencoder_feature(ae, target_series))
        for i, x in zip(targets, filled):
            if i in score_parts:
                score_parts[int(i)].append(x)
            else:
                train_inputs[int(i)] = x
    return train_inputs, {i: np.mean(parts, axis=0) for i, parts in score_parts.items()}


@dataclass
class CrossFit:
    """Out-of-fold per-minute risks ``[repeats][record] -> [minutes]`` per outcome, and the baselines at delivery."""

    record_ids: list[str]
    risk: dict[str, list[list[np.ndarray]]]
    inputs: list[list[np.ndarray]]  # [repeats][record] -> [minutes, inputs]: what the risk read
    at_delivery: dict[str, np.ndarray]  # predictor@outcome -> [repeats, records]
    seconds: float = 0.0
    #: The commit and time it ran at ("" if not recorded): a cached cross-fitting can outlive its commit.
    made_at: str = ""


def cross_fit(series: Sequence[Series], cfg: CompromiseConfig, log: Callable[[str], None] = print) -> CrossFit:
    """5 x 5 cross-fitting: every record's per-minute risk from a stacker and models that never saw it."""
    from sklearn.model_selection import StratifiedKFold

    t_start = time.monotonic()
    y = (np.array([s.ph for s in series]) < 7.05).astype(int)
    n = len(series)
    risk = {o: [[np.zeros(0)] * n for _ in range(cfg.repeats)] for o in OUTCOMES}
    inputs: list[list[np.ndarray]] = [[np.zeros(0)] * n for _ in range(cfg.repeats)]
    names = ["risk", "lstm", "figo_class", "logistic_figo"]
    at_delivery = {f"{p}@{o}": np.full((cfg.repeats, n), np.nan) for p in names for o in OUTCOMES}
    for rep in range(cfg.repeats):
        folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed + rep)
        for k, (tr, te) in enumerate(folds.split(np.zeros(n), y)):
            t0 = time.monotonic()
            seed = cfg.seed + 100 * rep + k
            train_x, test_x = cross_fitted_inputs(series, tr, te, cfg, seed)
            train_series = [series[i] for i in tr]
            stacker = fit_stacker([train_x[int(i)] for i in tr], train_series, cfg)
            figo_only = fit_stacker([train_x[int(i)] for i in tr], train_series, cfg, columns=FIGO_COLS)
            full_lstm = fit_lstm(train_series, cfg, seed)
            labels_tr = _labels(train_series)
            for i in te:
                x = test_x[int(i)]
                p = stacker.predict(x)
                for o in OUTCOMES:
                    risk[o][rep][i] = p[o]
                inputs[rep][i] = x
                if len(x):
                    last = x[-1:]
                    for o in OUTCOMES:
                        at_delivery[f"risk@{o}"][rep, i] = p[o][-1]
                        at_delivery[f"logistic_figo@{o}"][rep, i] = figo_only.predict(last)[o][0]
            with torch.no_grad():
                last_hour = torch.from_numpy(np.stack([series[i].lstm_train[0] for i in te]))
                p_lstm = torch.sigmoid(full_lstm.summary_logits(last_hour)[0]).numpy()
            for j, o in enumerate(OUTCOMES):
                at_delivery[f"lstm@{o}"][rep, te] = p_lstm[:, j]
                rate = _class_rates([train_x[int(i)] for i in tr], labels_tr[:, j])
                at_delivery[f"figo_class@{o}"][rep, te] = [rate.get(_class_at_delivery(test_x[int(i)]), rate["none"])
                                                          for i in te]
            log(f"compromise: repeat {rep + 1}/{cfg.repeats} fold {k + 1}/{cfg.folds} ({time.monotonic() - t0:.0f} s)")
    return CrossFit([s.record_id for s in series], risk, inputs, at_delivery, time.monotonic() - t_start)


def _class_at_delivery(x: np.ndarray) -> str:
    if not len(x) or not np.isfinite(x[-1, INPUT_NAMES.index("figo_class")]):
        return "none"
    return str(int(x[-1, INPUT_NAMES.index("figo_class")]))


def _class_rates(train_x: list[np.ndarray], y: np.ndarray) -> dict[str, float]:
    """The outcome's rate per FIGO class at delivery in the training records (a half-count prior)."""
    return class_rates([_class_at_delivery(x) for x in train_x], y, ("0", "1", "2", "none"))


def served_stacker(series: Sequence[Series], cfg: CompromiseConfig) -> tuple[Stacker, list[np.ndarray]]:
    """The stacker to serve: fitted on all records, whose model inputs come from one cross-fitting over them
    (the same inner folds every outer fold of :func:`cross_fit` uses)."""
    inputs, _ = cross_fitted_inputs(series, np.arange(len(series)), np.zeros(0, int), cfg, cfg.seed)
    filled = [inputs[i] for i in range(len(series))]
    return fit_stacker(filled, series, cfg), filled
