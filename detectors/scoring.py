"""Scoring detected events against ground truth (per-event precision,
recall, F1 and timing error). Pure functions: intervals in, scores out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

Interval = tuple[float, float]


def merge_intervals(intervals: Iterable[Interval], gap_s: float = 5.0) -> list[Interval]:
    """Union of intervals, joining those closer than ``gap_s``.

    A sliding-window analysis reports one ongoing event in many windows;
    merged, it counts once.
    """
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + gap_s:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


@dataclass(frozen=True)
class EventScore:
    true_positives: int
    false_positives: int
    false_negatives: int
    onset_errors_s: tuple[float, ...]  # |detected start - true start| of matched pairs

    @property
    def precision(self) -> float:
        d = self.true_positives + self.false_positives
        return self.true_positives / d if d else 1.0

    @property
    def recall(self) -> float:
        d = self.true_positives + self.false_negatives
        return self.true_positives / d if d else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def mean_onset_error_s(self) -> float | None:
        return sum(self.onset_errors_s) / len(self.onset_errors_s) if self.onset_errors_s else None

    def __add__(self, other: EventScore) -> EventScore:
        return EventScore(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
            self.onset_errors_s + other.onset_errors_s,
        )


EMPTY_SCORE = EventScore(0, 0, 0, ())


def score_events(truth: list[Interval], detected: list[Interval]) -> EventScore:
    """One-to-one matching by overlap, largest overlap first."""
    pairs = []
    for i, (ts, te) in enumerate(truth):
        for j, (ds, de) in enumerate(detected):
            overlap = min(te, de) - max(ts, ds)
            if overlap > 0:
                pairs.append((overlap, i, j))
    used_t: set[int] = set()
    used_d: set[int] = set()
    errors = []
    for _, i, j in sorted(pairs, reverse=True):
        if i in used_t or j in used_d:
            continue
        used_t.add(i)
        used_d.add(j)
        errors.append(abs(detected[j][0] - truth[i][0]))
    return EventScore(len(used_t), len(detected) - len(used_d), len(truth) - len(used_t), tuple(errors))


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney), ties counted half."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


@dataclass
class SampleConfusion:
    """Per-sample confusion of a binary verdict (e.g. "false signal"), plus per-minute agreement.

    A *false minute* is a minute (240 samples at 4 Hz) with a value for at least
    half of it, most of which the experts marked false; it is *caught* when the
    verdict calls at least half of those false samples false (:meth:`add_minutes`).
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    false_minutes: int = 0
    false_minutes_caught: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        self.tp += int(np.sum(predicted & truth))
        self.fp += int(np.sum(predicted & ~truth))
        self.fn += int(np.sum(~predicted & truth))
        self.tn += int(np.sum(~predicted & ~truth))

    def add_minutes(self, predicted: np.ndarray, labels: np.ndarray, signal: np.ndarray | None = None,
                    samples_per_minute: int = 240) -> None:
        """Count false minutes and those caught, over the samples where the monitor gave a value.

        ``labels``: 1 false, 0 true, -1 unmarked, per sample like ``predicted``;
        ``signal``: where the monitor gave a value (all samples when None). A minute
        is a *false minute* when the monitor gave a value for at least half of it
        and the experts marked at least half of those samples false; it is *caught*
        when the verdict calls at least half of its marked false samples false.
        Why only samples with a value: a stretch of lost signal the experts marked
        false holds no false trace to catch (no judge can catch it, and calling
        lost samples false would "catch" it without judging anything).
        """
        m = min(predicted.size, labels.size) // samples_per_minute
        n = m * samples_per_minute
        value = (np.ones(n, bool) if signal is None else signal[:n].astype(bool)).reshape(m, samples_per_minute)
        false = (labels[:n] == 1).reshape(m, samples_per_minute) & value
        judged = predicted[:n].astype(bool).reshape(m, samples_per_minute) & false
        marked = (value.sum(axis=1) * 2 >= samples_per_minute) & (false.sum(axis=1) * 2 >= value.sum(axis=1))
        hit = judged.sum(axis=1) * 2 >= false.sum(axis=1)
        self.false_minutes += int(marked.sum())
        self.false_minutes_caught += int((marked & hit).sum())

    def add_recording(self, predicted: np.ndarray, labels: np.ndarray, signal: np.ndarray) -> None:
        """One recording's per-sample verdicts against the experts' labels (1 false, 0 true, -1 unmarked),
        scored where the experts marked and the monitor gave a value (``signal``); false minutes too."""
        scored = (labels >= 0) & signal
        self.add(predicted[scored], labels[scored] == 1)
        self.add_minutes(predicted, labels, signal)

    def merge(self, other: SampleConfusion) -> None:
        for name in ("tp", "fp", "fn", "tn", "false_minutes", "false_minutes_caught"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def sensitivity(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def specificity(self) -> float:
        return self.tn / max(self.tn + self.fp, 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.sensitivity
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def minutes_caught_fraction(self) -> float:
        return self.false_minutes_caught / max(self.false_minutes, 1)

    def as_dict(self) -> dict[str, float]:
        return {"sensitivity": round(self.sensitivity, 4), "specificity": round(self.specificity, 4),
                "precision": round(self.precision, 4), "f1": round(self.f1, 4),
                "false_minutes_caught": round(self.minutes_caught_fraction, 4),
                "false_minutes": self.false_minutes, "false_samples": self.tp + self.fn,
                "scored_samples": self.tp + self.fp + self.fn + self.tn}


def recording_intervals(per_recording: list[SampleConfusion], n: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Intervals of the pooled per-sample figures, resampling whole recordings.

    Why recordings and not samples: the samples of one trace are not independent
    (a false stretch lasts minutes, and a few recordings hold most of the false
    positives), so a per-sample interval would be far too narrow.

    Parameters
    ----------
    per_recording : one confusion matrix per recording (SampleConfusion.add_recording).
    n : resamplings; seed : for the resampling; level : coverage (percentile interval).

    Returns
    -------
    For sensitivity, specificity, precision, f1 and false_minutes_caught: (low, high).
    """
    if not per_recording:
        return {}
    picks = _resamplings(len(per_recording), n, seed)
    return _percentile_intervals(_resampled_figures(per_recording, picks), level)


def recording_change_intervals(before: list[SampleConfusion], after: list[SampleConfusion], n: int = 2000,
                               seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Intervals of the change in the pooled figures from ``before`` to ``after``: two judges of the same
    recordings (in the same order), each resampling of whole recordings drawn once for both.

    Why paired: the recordings that hold most false positives move both judges alike, so
    the change is far better determined than the two figures' own intervals suggest.
    """
    if len(before) != len(after):
        raise ValueError(f"{len(before)} recordings before, {len(after)} after: a paired change needs the same ones")
    if not before:
        return {}
    picks = _resamplings(len(before), n, seed)
    was, now = _resampled_figures(before, picks), _resampled_figures(after, picks)
    return _percentile_intervals({k: now[k] - was[k] for k in now}, level)


def _resamplings(recordings: int, n: int, seed: int) -> np.ndarray:
    """``n`` resamplings (with replacement) of ``recordings`` recordings: indices ``[n, recordings]``."""
    return np.random.default_rng(seed).integers(0, recordings, size=(n, recordings))


def _resampled_figures(per_recording: list[SampleConfusion], picks: np.ndarray) -> dict[str, np.ndarray]:
    """The pooled figures of each resampling (a row of ``picks``)."""
    counts = np.array([[c.tp, c.fp, c.fn, c.tn, c.false_minutes, c.false_minutes_caught] for c in per_recording],
                      dtype=float)
    tp, fp, fn, tn, minutes, caught = counts[picks].sum(axis=1).T
    sensitivity = tp / np.maximum(tp + fn, 1)
    precision = tp / np.maximum(tp + fp, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + sensitivity > 0, 2 * precision * sensitivity / (precision + sensitivity), 0.0)
    return {"sensitivity": sensitivity, "specificity": tn / np.maximum(tn + fp, 1), "precision": precision,
            "f1": f1, "false_minutes_caught": caught / np.maximum(minutes, 1)}


def _percentile_intervals(figures: dict[str, np.ndarray], level: float) -> dict[str, tuple[float, float]]:
    tail = (1 - level) / 2 * 100
    return {k: (round(float(np.percentile(v, tail)), 4), round(float(np.percentile(v, 100 - tail)), 4))
            for k, v in figures.items()}
