"""Screen one candidate input of the compromise risk on the tuning half only (``ctgwatch evaluate risk-screen``).

Why a screen: with 28 acidaemic labours, every input tried and kept on the whole data set would make the
out-of-fold figures a little more optimistic than an outside evaluator will find them. A candidate is
therefore judged on the tuning half (even positions of the directory's listing) only, by a rule committed
with the candidate before the screen runs; only a kept candidate goes on to the full cross-fitting and the
held-out half.

What it does: for each repeat of the cross-fitting's folds (the same seeds as
:func:`models.training.compromise.cross_fit`), fit the stacker on the fold's tuning-half training records
and score its tuning-half test records at delivery, once with every input and once without the candidate.
No held-out record is fitted on or scored; its outcome counts only where the cross-fitting's folds are
stratified, so the screen's folds are the figures' folds. The LSTM's and the autoencoder's columns come from the
cross-fitting's out-of-fold inputs (models that never saw the record); the FIGO and quality columns from the
replay. A candidate computed from the FIGO analysis, or from the models' per-minute outputs (as
:func:`models.training.compromise.with_models` fills it from the cached columns), needs no new cross-fitting;
a new model recipe does.

The verdict (:data:`MIN_GAIN`, :data:`MIN_REPEATS_HIGHER`): keep the candidate only if the tuning half's AUC
at delivery for pH < 7.05 is higher with it by at least 0.005 on the mean over the repeats and higher in at
least 4 of the 5 repeats, so one lucky repeat cannot carry it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.scoring import auc
from models.serving.compromise import INPUT_NAMES
from models.training.compromise import AE_COL, LSTM_COL, CompromiseConfig, Series, fit_stacker, with_models

#: The model columns the cross-fitting caches, those :func:`models.training.compromise.with_models` fills from
#: the models' outputs: a candidate can be computed from them, but not be one of them.
CACHED_MODEL_INPUTS = (INPUT_NAMES[LSTM_COL], INPUT_NAMES[AE_COL])
#: The smallest rise of the tuning half's mean AUC at delivery that keeps a candidate.
MIN_GAIN = 0.005
#: In how many of the 5 repeats the AUC must be higher with the candidate.
MIN_REPEATS_HIGHER = 4


@dataclass
class ScreenResult:
    """The tuning half's out-of-fold AUC at delivery (pH < 7.05) per repeat, with and without the candidate."""

    candidate: str
    with_candidate: list[float]
    without_candidate: list[float]
    records: int
    acidaemic: int

    @property
    def gain(self) -> float:
        return statistics.fmean(self.with_candidate) - statistics.fmean(self.without_candidate)

    @property
    def repeats_higher(self) -> int:
        return sum(a > b for a, b in zip(self.with_candidate, self.without_candidate))

    @property
    def keep(self) -> bool:
        return self.gain >= MIN_GAIN and self.repeats_higher >= min(MIN_REPEATS_HIGHER, len(self.with_candidate))

    def summary(self) -> str:
        def show(values: list[float]) -> str:
            return f"{statistics.fmean(values):.3f} (repeats {min(values):.3f}-{max(values):.3f})"
        return (f"{self.candidate}: tuning half, {self.records} records ({self.acidaemic} with pH < 7.05), "
                f"AUC at delivery with it {show(self.with_candidate)}, without {show(self.without_candidate)}; "
                f"gain {self.gain:+.4f}, higher in {self.repeats_higher} of {len(self.with_candidate)} repeats: "
                + ("keep" if self.keep else "do not add"))


def inputs_with_models(series: Sequence[Series], fitted: Sequence[np.ndarray], fitted_names: Sequence[str]) -> list[np.ndarray]:
    """Each record's per-minute inputs in :data:`INPUT_NAMES` order: the replay's FIGO and quality columns,
    the model columns from the cross-fitting's out-of-fold inputs (laid out as ``fitted_names``)."""
    lstm, ae = (list(fitted_names).index(name) for name in CACHED_MODEL_INPUTS)

    def column(x: np.ndarray, j: int) -> np.ndarray:
        return x[:, j] if len(x) else np.zeros(0)

    return with_models(series, [column(x, lstm) for x in fitted], [column(x, ae) for x in fitted])


def screen_input(series: Sequence[Series], fitted: Sequence[Sequence[np.ndarray]], fitted_names: Sequence[str],
                 tuning: np.ndarray, candidate: str, cfg: CompromiseConfig | None = None) -> ScreenResult:
    """Refit the stacker per outer fold on tuning-half records only, with and without ``candidate``.

    ``fitted``: the cross-fitting's out-of-fold inputs, ``[repeat][record] -> [minutes, len(fitted_names)]``.
    """
    from sklearn.model_selection import StratifiedKFold

    cfg = cfg or CompromiseConfig()
    if candidate not in INPUT_NAMES or candidate in CACHED_MODEL_INPUTS:
        raise ValueError(f"{candidate!r} is not one of the stacker's inputs other than the cached model columns "
                         f"{list(CACHED_MODEL_INPUTS)}: {list(INPUT_NAMES)}")
    y = np.array([s.ph < 7.05 for s in series], dtype=int)
    in_tuning = np.zeros(len(series), bool)
    in_tuning[tuning] = True
    scored = in_tuning & np.array([len(s.times) > 0 for s in series])
    every = list(range(len(INPUT_NAMES)))
    arms = {"with": every, "without": [i for i in every if INPUT_NAMES[i] != candidate]}
    aucs: dict[str, list[float]] = {arm: [] for arm in arms}
    for rep, per_record in enumerate(fitted):
        x = inputs_with_models(series, per_record, fitted_names)
        at_delivery = {arm: np.full(len(series), np.nan) for arm in arms}
        folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed + rep)
        for tr, te in folds.split(np.zeros(len(series)), y):
            train = [int(i) for i in tr if scored[i]]
            test = [int(i) for i in te if scored[i]]
            for arm, columns in arms.items():
                stacker = fit_stacker([x[i] for i in train], [series[i] for i in train], cfg, columns=columns)
                for i in test:
                    at_delivery[arm][i] = stacker.predict(x[i][-1:])["ph_below_7_05"][0]
        for arm in arms:
            p = at_delivery[arm]
            aucs[arm].append(auc(p[scored & (y == 1)], p[scored & (y == 0)]))
    return ScreenResult(candidate, aucs["with"], aucs["without"], int(scored.sum()), int(y[scored].sum()))
