"""The tuning-half screen of a candidate risk input: it keeps an input that carries the outcome, drops one
that does not, and never fits on or scores a held-out record."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.serving.compromise import INPUT_NAMES
from stream.evaluation.risk_screen import ScreenResult, inputs_with_models, screen_input

MINUTES = 12


def _records(n: int = 160, seed: int = 0) -> tuple[list[SimpleNamespace], list[list[np.ndarray]], tuple[str, ...]]:
    """Labours whose last minutes' deceleration minutes carry the outcome; everything else is noise. The
    cross-fitting's inputs lack one column (``late_30min``), as they would for a new candidate."""
    rng = np.random.default_rng(seed)
    fitted_names = tuple(n for n in INPUT_NAMES if n != "late_30min")
    series, fitted = [], []
    for r in range(n):
        acidaemic = r % 4 == 0
        figo = rng.normal(1.0, 0.3, size=(MINUTES, len(INPUT_NAMES))).clip(0.0)
        figo[:, INPUT_NAMES.index("deceleration_min_30min")] = rng.normal(6.0 if acidaemic else 3.0, 1.2, MINUTES).clip(0)
        figo[:, INPUT_NAMES.index("late_30min")] = rng.poisson(2.0, MINUTES)
        figo[:, INPUT_NAMES.index("lstm")] = np.nan
        figo[:, INPUT_NAMES.index("autoencoder")] = np.nan
        models = np.full((MINUTES, len(fitted_names)), np.nan)
        models[:, fitted_names.index("lstm")] = rng.uniform(0.03, 0.2, MINUTES)
        models[:, fitted_names.index("autoencoder")] = rng.uniform(0.8, 1.5, MINUTES)
        series.append(SimpleNamespace(record_id=str(r), ph=7.0 if acidaemic else 7.25, normal_outcome=not acidaemic,
                                      times=60.0 * np.arange(1, MINUTES + 1), figo=figo))
        fitted.append(models)
    return series, [fitted, fitted], fitted_names


def test_model_columns_come_from_the_cross_fitting_and_the_rest_from_the_replay() -> None:
    series, fitted, names = _records(4)
    x = inputs_with_models(series, fitted[0], names)
    lstm = INPUT_NAMES.index("lstm")
    assert np.array_equal(x[1][:, lstm], fitted[0][1][:, names.index("lstm")])
    late = INPUT_NAMES.index("late_30min")
    assert np.array_equal(x[1][:, late], series[1].figo[:, late])


def test_an_input_that_carries_the_outcome_is_kept_and_noise_is_not() -> None:
    series, fitted, names = _records()
    tuning = np.arange(0, len(series), 2)
    useful = screen_input(series, fitted, names, tuning, "deceleration_min_30min")
    assert useful.keep and useful.gain > 0.1 and useful.repeats_higher == 2
    noise = screen_input(series, fitted, names, tuning, "late_30min")
    assert not noise.keep
    assert useful.records == len(tuning) and useful.acidaemic == int(sum(series[i].ph < 7.05 for i in tuning))


def test_held_out_records_are_neither_fitted_on_nor_scored() -> None:
    series, fitted, names = _records()
    tuning = np.arange(0, len(series), 2)
    before = screen_input(series, fitted, names, tuning, "deceleration_min_30min")
    for i in range(1, len(series), 2):  # scramble every held-out record's inputs (its outcome sets its fold)
        series[i].figo = series[i].figo[::-1] * 3.0
        series[i].normal_outcome = not series[i].normal_outcome
        for per_repeat in fitted:
            per_repeat[i] = per_repeat[i][::-1] * 0.5
    after = screen_input(series, fitted, names, tuning, "deceleration_min_30min")
    assert after.with_candidate == before.with_candidate and after.without_candidate == before.without_candidate


def test_a_model_column_cannot_be_screened_and_the_rule_needs_most_repeats() -> None:
    series, fitted, names = _records(8)
    with pytest.raises(ValueError):
        screen_input(series, fitted, names, np.arange(8), "lstm")
    lucky = ScreenResult("x", [0.9, 0.7, 0.7, 0.7, 0.7], [0.7, 0.71, 0.71, 0.71, 0.71], 100, 10)
    assert lucky.gain > 0.005 and lucky.repeats_higher == 1 and not lucky.keep
    assert "do not add" in lucky.summary()


def test_a_cached_cross_fitting_with_other_inputs_is_recognised() -> None:
    from models.training.compromise import CrossFit
    from stream.evaluation.risk import input_width

    series, fitted, names = _records(3)
    old = CrossFit([s.record_id for s in series], {}, [[np.zeros(0)] + fitted[0][1:]], {})
    assert input_width(old) == len(names) == len(INPUT_NAMES) - 1
