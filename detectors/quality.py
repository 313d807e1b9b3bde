"""Signal quality of the FHR trace, the gate in front of every other detector.

A Doppler or scalp-electrode FHR trace is full of things that are not the
fetal heart: signal loss (0), spikes, half or double counting, and the
mother's own heart rate picked up by the transducer. Clinical conclusions are
drawn only from what survives this module, and a window that is mostly not
fetal signal is reported as "insufficient signal", never as normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import median_filter
from scipy.stats import t as student_t

from detectors.findings import Finding, Severity
from detectors.runs import (
    centred_counts,
    close_gaps,
    drop_short,
    interpolate_gaps,
    runs,
)
from detectors.thresholds import SignalQualityThresholds

DEFAULT_QUALITY = SignalQualityThresholds()


@dataclass(frozen=True)
class ModelVerdict:
    """The false-signal model's judgement of a window, per sample: 1 false, 0 fetal, NaN not judged."""

    false: np.ndarray
    model: str = "ctg_false_signal"
    version: str = "?"
    threshold: float = 0.5
    #: from v8, the threshold for seconds without a maternal HR beside them (None: ``threshold`` for all)
    threshold_without_maternal: float | None = None

    @property
    def threshold_text(self) -> str:
        """The threshold as a clinician reads it in the finding's rule."""
        if self.threshold_without_maternal is None or self.threshold_without_maternal == self.threshold:
            return f"probability >= {self.threshold:g}"
        return (f"probability >= {self.threshold:g} with a maternal HR, "
                f">= {self.threshold_without_maternal:g} without one")


@dataclass(frozen=True)
class QualityReport:
    fs: float
    n: int
    valid: np.ndarray  # samples accepted as fetal signal
    loss: np.ndarray  # no signal from the device (the monitor sent 0)
    artefact: np.ndarray  # implausible values and spikes
    ratio_error: np.ndarray  # halving or doubling
    maternal: np.ndarray  # maternal heart rate captured instead of fetal
    grade: str  # "good", "fair" or "insufficient"
    findings: list[Finding] = field(default_factory=list)
    #: samples the false-signal model judged not fetal (empty where it judged none)
    model_false: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    #: samples the false-signal model judged at all; the rules judged the rest
    model_judged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    #: samples that never arrived (NaN: monitor off, network, gateway, broker or worker down). Missing, like
    #: loss, but not a finding about the transducer: the outage is named by the path that failed.
    no_data: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if self.n else 0.0

    @property
    def loss_fraction(self) -> float:
        return float(self.loss.mean()) if self.n else 1.0

    @property
    def sufficient(self) -> bool:
        return self.grade != "insufficient"

    def clean(self, fhr: np.ndarray) -> np.ndarray:
        """The FHR with every rejected sample set to NaN."""
        return np.where(self.valid, np.asarray(fhr, dtype=float), np.nan)


def _spikes(x: np.ndarray, plausible: np.ndarray, fs: float, th: SignalQualityThresholds) -> np.ndarray:
    """Short excursions far from the 15-s running median."""
    if not plausible.any():
        return np.zeros_like(plausible)
    filled = interpolate_gaps(x, plausible)
    med = median_filter(filled, size=max(3, int(15 * fs) | 1), mode="nearest")
    far = plausible & (np.abs(x - med) > th.spike_bpm)
    long_far = drop_short(far, int(th.spike_max_s * fs) + 1)
    return far & ~long_far


def _ratio_errors(x: np.ndarray, plausible: np.ndarray, fs: float, th: SignalQualityThresholds) -> np.ndarray:
    """Segments entered by an abrupt jump to about half or double the rate before.

    Counting every other beat (halving) or every half-beat (doubling) changes
    the rate by a factor of two from one second to the next, which no real
    fetal heart does.
    """
    out = np.zeros_like(plausible)
    step = max(1, int(round(fs)))
    if x.size <= 2 * step:
        return out
    prev = np.concatenate((np.full(step, np.nan), x[:-step]))
    ok = plausible & np.concatenate((np.zeros(step, bool), plausible[:-step]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = x / prev
    tol = th.ratio_tolerance
    into = np.flatnonzero(ok & ((np.abs(ratio - 0.5) < tol) | (np.abs(ratio - 2.0) < tol)))
    i = 0
    while i < into.size:
        start = into[i]
        factor = ratio[start]
        back = 1.0 / factor
        # The erroneous segment ends at the reverse jump or at the next loss.
        end = start
        while end < x.size and plausible[end]:
            if end > start and end - step >= 0 and plausible[end - step] and abs(x[end] / x[end - step] - back) < tol * back:
                break
            end += 1
        out[start:end] = True
        # The reverse jump spans ``step`` samples, each of which also looks
        # like a jump into a segment: skip past all of them.
        i = int(np.searchsorted(into, end + step, side="left"))
    return out


def _median_5s(v: np.ndarray, ok: np.ndarray, fs: float) -> np.ndarray:
    """5-s running median over the gaps filled in: the trend of a noisy trace."""
    return median_filter(interpolate_gaps(v, ok), size=max(3, int(5 * fs) | 1), mode="nearest")


def _follows(xs: np.ndarray, ms: np.ndarray, fs: float, min_corr: float, th: SignalQualityThresholds) -> bool:
    """Whether the FHR trend follows the maternal trend beyond chance.

    Both must vary, and their correlation must be at least ``min_corr`` and
    significant (one-sided, ``th.mhr_tracking_p_value``) with one independent
    value per 5 s: a short stretch needs a closer match than a long one.
    """
    if xs.size < 2 or np.std(xs) < th.mhr_min_variation_bpm or np.std(ms) < th.mhr_min_variation_bpm:
        return False
    n_eff = max(3, int(xs.size / fs / 5.0))
    t_crit = student_t.ppf(1.0 - th.mhr_tracking_p_value, n_eff - 2)
    significant = t_crit / np.sqrt(n_eff - 2 + t_crit**2)
    return bool(np.corrcoef(xs, ms)[0, 1] >= max(min_corr, significant))


def _near_stretches(
    x: np.ndarray, both: np.ndarray, overlap: np.ndarray, m: np.ndarray, multiple: float,
    fs: float, th: SignalQualityThresholds,
) -> list[tuple[int, int]]:
    """Stretches where the FHR sits on ``multiple`` x the maternal rate, judged over a minute.

    Sample by sample a captured Doppler trace wanders a few bpm around the
    smooth maternal channel, so what counts is how much of the surrounding
    minute is near it, and how near the stretch is as a whole. ``both`` marks
    where both channels are plausible and ``overlap`` counts it over the
    minute around each sample (:func:`_capture_window`).
    """
    with np.errstate(invalid="ignore"):
        diff = np.abs(x - multiple * m)
    near = both & (diff < th.mhr_match_bpm)
    w = _capture_window(fs, th)
    # A dense sample has at least mhr_min_near_fraction of mhr_min_overlap of its minute near: with fewer
    # near samples in the whole trace there is no stretch (the usual case, which then skips the counting).
    if np.count_nonzero(near) < th.mhr_min_near_fraction * th.mhr_min_overlap * w:
        return []
    near_count = centred_counts(near, w)
    dense = (overlap >= th.mhr_min_overlap * w) & (near_count >= th.mhr_min_near_fraction * overlap)
    min_s = th.mhr_min_s if multiple == 1.0 else th.mhr_double_min_s
    dense = drop_short(close_gaps(dense, int(5 * fs)), int(min_s * fs))
    return [(int(a), int(b)) for a, b in runs(dense)
            if both[a:b].any() and np.median(diff[a:b][both[a:b]]) <= th.mhr_median_diff_bpm]


def _capture_window(fs: float, th: SignalQualityThresholds) -> int:
    """Samples in the span a capture is judged over (``mhr_window_s``)."""
    return max(1, int(th.mhr_window_s * fs))


def _continue_capture(
    x: np.ndarray, trend_x: np.ndarray, plausible: np.ndarray, m: np.ndarray, m_ok: np.ndarray,
    captured: np.ndarray, fs: float, th: SignalQualityThresholds,
) -> np.ndarray:
    """Extend captured stretches over the rest of their continuous trace.

    The maternal channel often drops out while the transducer keeps counting
    the mother; the trace is cut into pieces at every jump of its 5-s median,
    every loss longer than ``capture_max_gap_s`` and every sample where the
    maternal channel is present but far away, and a piece that holds captured
    samples is captured as a whole.
    """
    if not captured.any():
        return captured
    step = max(1, int(round(fs)))
    lagged = np.concatenate((trend_x[:step], trend_x[:-step]))
    jump = plausible & (np.abs(trend_x - lagged) > th.capture_jump_bpm)
    with np.errstate(invalid="ignore"):
        far = plausible & m_ok & (np.abs(x - m) > 2 * th.mhr_match_bpm) & (np.abs(x - 2 * m) > 2 * th.mhr_match_bpm)
    boundary = (jump | far) & ~np.concatenate(([False], (jump | far)[:-1]))  # first sample of each jump
    idx = np.flatnonzero(plausible)
    boundary[idx[1:][np.diff(idx) > th.capture_max_gap_s * fs]] = True
    piece = np.cumsum(boundary)
    captured_pieces = np.unique(piece[captured & ~far])
    return captured | (np.isin(piece, captured_pieces) & plausible & ~far)


def _maternal_capture(
    x: np.ndarray, plausible: np.ndarray, mhr: np.ndarray | None, fs: float, th: SignalQualityThresholds
) -> np.ndarray:
    """FHR samples that are the maternal heart rate (or its double), not the fetus."""
    if mhr is None:
        return np.zeros_like(plausible)
    m = np.asarray(mhr, dtype=float)
    m_ok = np.isfinite(m) & (m > 0)
    captured = np.zeros_like(plausible)
    both = plausible & m_ok
    overlap = centred_counts(both, _capture_window(fs, th))
    # The maternal rate itself, or its double (a Doppler counting artefact).
    candidates = [(multiple, stretch) for multiple in (1.0, 2.0)
                  for stretch in _near_stretches(x, both, overlap, m, multiple, fs, th)]
    if not candidates:
        return captured
    trend_x, trend_m = _median_5s(x, plausible, fs), _median_5s(m, m_ok, fs)
    for multiple, (a, b) in candidates:
        # A captured trace follows the mother's changes; a fetal trace that only
        # passes through her rate (a deceleration to ~90 bpm, a tachycardia near
        # twice her rate) does not. Compared on 5-s medians: a Doppler trace of
        # the mother is noisy beside the smooth maternal channel. A flat pair
        # shows no tracking, and without it the samples stay fetal.
        sel = both[a:b]
        min_corr = th.mhr_min_correlation if multiple == 1.0 else th.mhr_double_min_correlation
        if _follows(trend_x[a:b][sel], multiple * trend_m[a:b][sel], fs, min_corr, th):
            captured[a:b] = plausible[a:b]
    return _continue_capture(x, trend_x, plausible, m, m_ok, captured, fs, th) & plausible


def assess_quality(
    fhr: np.ndarray,
    fs: float = 4.0,
    mhr: np.ndarray | None = None,
    t0: float = 0.0,
    th: SignalQualityThresholds = DEFAULT_QUALITY,
    model_verdict: ModelVerdict | None = None,
) -> QualityReport:
    """Grade an FHR window and say which samples are fetal signal.

    Parameters
    ----------
    fhr : numpy.ndarray
        FHR in bpm: 0 where the monitor reported no signal (loss), NaN where no sample arrived (no data).
    fs : float
        Sampling rate in Hz.
    mhr : numpy.ndarray or None
        The maternal heart-rate channel at the same rate (0/NaN where absent).
        Capture needs the FHR to follow the maternal trace, so a constant
        maternal value (one vitals reading) never marks fetal samples as maternal.
    t0 : float
        Time of the first sample.
    th : SignalQualityThresholds
    model_verdict : ModelVerdict or None
        The false-signal model's per-sample verdict: where it judged, it replaces the
        rules' capture and halving tests; the rules judge the rest.

    Returns
    -------
    QualityReport
        Per-sample masks (valid, loss, artefact, halving/doubling, maternal), a
        grade and a finding per stretch of each kind.
    """
    x = np.asarray(fhr, dtype=float).ravel()
    n = x.size
    no_data = ~np.isfinite(x)  # nothing arrived: missing, but no finding about the transducer
    loss, implausible, spikes = _device_problems(x, no_data, fs, th)
    plausible = ~no_data & ~loss & ~implausible & ~spikes
    ratio = _ratio_errors(x, plausible, fs, th)
    m = None if mhr is None else np.asarray(mhr, dtype=float).ravel()[:n]
    # A stretch that tracks the maternal channel is the mother's rate even when it was
    # entered by a jump that also looks like halving: the channel is the stronger evidence.
    maternal = _maternal_capture(x, plausible, m, fs, th)
    ratio &= ~maternal
    judged, model_false = _model_judgement(model_verdict, plausible, fs)
    maternal &= ~judged
    ratio &= ~judged
    valid = plausible & ~ratio & ~maternal & ~model_false
    fraction = float(valid.mean()) if n else 0.0
    grade = _grade(fraction, th)
    findings = [
        *_loss_findings(loss, fs, t0, th),
        *_capture_findings(x, m, maternal, fs, t0, th),
        *_ratio_findings(x, ratio, fs, t0),
        *_model_findings(x, m, model_false, model_verdict, fs, t0),
        *_insufficient_findings(grade, fraction, float(no_data.mean()) if n else 0.0, n, fs, t0, th),
    ]
    return QualityReport(fs=fs, n=n, valid=valid, loss=loss, artefact=implausible | spikes, ratio_error=ratio,
                         maternal=maternal, grade=grade, findings=findings, model_false=model_false,
                         model_judged=judged, no_data=no_data)


def _device_problems(
    x: np.ndarray, no_data: np.ndarray, fs: float, th: SignalQualityThresholds
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal loss, implausible values, spikes) among the samples that arrived: samples no judge needs to
    look at twice."""
    with np.errstate(invalid="ignore"):
        loss = ~no_data & (x <= 0)
        implausible = ~no_data & ~loss & ((x < th.min_plausible_bpm) | (x > th.max_plausible_bpm))
    spikes = _spikes(x, ~no_data & ~loss & ~implausible, fs, th)
    return loss, implausible, spikes


def _grade(valid_fraction: float, th: SignalQualityThresholds) -> str:
    if valid_fraction >= th.good_valid_fraction:
        return "good"
    return "fair" if valid_fraction >= th.min_valid_fraction else "insufficient"


def _model_judgement(verdict: ModelVerdict | None, plausible: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(samples the model judged, samples it judged not fetal); nothing judged without a verdict."""
    n = plausible.size
    if verdict is None:
        return np.zeros(n, bool), np.zeros(n, bool)
    values = np.full(n, np.nan)
    m = min(n, verdict.false.size)
    values[:m] = verdict.false[:m]
    judged = np.isfinite(values)
    false = np.zeros(n, bool)
    false[judged] = values[judged] > 0.5
    return judged, _close_model_gaps(false & plausible, plausible, judged, fs)


def _close_model_gaps(false: np.ndarray, plausible: np.ndarray, judged: np.ndarray, fs: float) -> np.ndarray:
    """Fill the model's verdict over signal loss inside a false stretch (a run is not cut by a dropout).

    Loss samples stay loss; this only joins the false samples on both sides into one stretch so
    one finding, not many, reports it.
    """
    joined = close_gaps(false, int(5 * fs))
    return joined & plausible & judged


def _model_findings(x: np.ndarray, m: np.ndarray | None, model_false: np.ndarray, verdict: ModelVerdict | None,
                    fs: float, t0: float) -> list[Finding]:
    """One finding per stretch the false-signal model judged not fetal, >= 20 s (shorter ones are only drawn)."""
    if verdict is None:
        return []
    findings = []
    for a, b in runs(close_gaps(model_false, int(30 * fs))):
        if (b - a) / fs < 20.0:
            continue
        values: dict[str, float] = {"duration_s": (b - a) / fs, "fhr_median": float(np.median(x[a:b][model_false[a:b]]))}
        near = ""
        if m is not None and np.isfinite(m[a:b]).any() and (m[a:b] > 0).any():
            mm = float(np.nanmedian(np.where(m[a:b] > 0, m[a:b], np.nan)))
            values["mhr_median"] = mm
            near = f"; maternal HR {mm:.0f} bpm beside it"
        findings.append(Finding(
            "false_signal", Severity.URGENT, t0 + a / fs, t0 + b / fs,
            rule=(f"signal quality judged by the false-signal model {verdict.model} v{verdict.version} "
                  f"({verdict.threshold_text}; trained on FHRMA experts' marks of false FHR)"),
            sentence=(f"FHR trace for {(b - a) / fs:.0f} s is judged not fetal (median {values['fhr_median']:.0f} "
                      f"bpm{near}): likely the mother's heart rate or a doubled/halved count; confirm the fetal heart"),
            values=values,
        ))
    return findings


def _loss_findings(loss: np.ndarray, fs: float, t0: float, th: SignalQualityThresholds) -> list[Finding]:
    return [Finding(
        "signal_loss", Severity.ADVISORY, t0 + a / fs, t0 + b / fs,
        rule=f"signal quality: no FHR signal for >= {th.loss_event_min_s:.0f} s",
        sentence=f"FHR signal lost for {(b - a) / fs:.0f} s; check the transducer",
        values={"duration_s": (b - a) / fs},
    ) for a, b in runs(loss) if (b - a) / fs >= th.loss_event_min_s]


def _capture_findings(
    x: np.ndarray, m: np.ndarray | None, maternal: np.ndarray, fs: float, t0: float, th: SignalQualityThresholds
) -> list[Finding]:
    findings = []
    for a, b in runs(maternal):
        assert m is not None  # capture is only found beside a maternal channel
        # Distance to the maternal rate or its double, where the channel has a value.
        with np.errstate(invalid="ignore"):
            diffs = np.fmin(np.abs(x[a:b] - m[a:b]), np.abs(x[a:b] - 2 * m[a:b]))
        has_channel = np.isfinite(diffs)
        median_diff = float(np.median(diffs[has_channel])) if has_channel.any() else None
        channel_note = (f"median difference {median_diff:.1f} bpm" if median_diff is not None else "no maternal value")
        if has_channel.mean() < 0.9:
            channel_note += f"; maternal channel present for {has_channel.mean():.0%} of it"
        findings.append(Finding(
            "maternal_hr_capture", Severity.URGENT, t0 + a / fs, t0 + b / fs,
            rule=(f"signal quality: FHR within {th.mhr_match_bpm:.0f} bpm of the maternal HR for >= "
                  f"{th.mhr_min_near_fraction:.0%} of a {th.mhr_window_s:.0f}-s window, >= {th.mhr_min_s:.0f} s "
                  "(FIGO 2015: coinciding FHR and maternal HR, confirm the fetal heart)"),
            sentence=(f"FHR trace matches the maternal heart rate for {(b - a) / fs:.0f} s "
                      f"({channel_note}): the monitor may be recording the mother"),
            values={"duration_s": (b - a) / fs, "fhr_median": float(np.median(x[a:b])),
                    "maternal_channel_fraction": float(has_channel.mean()),
                    **({} if median_diff is None else {"mhr_median": float(np.nanmedian(m[a:b])),
                                                       "median_difference_bpm": median_diff})},
        ))
    return findings


def _ratio_findings(x: np.ndarray, ratio: np.ndarray, fs: float, t0: float) -> list[Finding]:
    return [Finding(
        "halving_doubling", Severity.ADVISORY, t0 + a / fs, t0 + b / fs,
        rule="signal quality: abrupt jump to ~1/2 or ~2x the preceding rate",
        sentence=f"FHR looks halved or doubled for {(b - a) / fs:.0f} s (counting artefact)",
        values={"duration_s": (b - a) / fs, "fhr_median": float(np.median(x[a:b]))},
    ) for a, b in runs(ratio)]


def _insufficient_findings(
    grade: str, fraction: float, no_data_fraction: float, n: int, fs: float, t0: float, th: SignalQualityThresholds
) -> list[Finding]:
    """The window cannot be interpreted; the sentence says how much of it never arrived (not the transducer)."""
    if grade != "insufficient" or not n:
        return []
    missing = (f" ({no_data_fraction * n / fs / 60:.0f} min of it never arrived from the monitor)"
               if no_data_fraction * n / fs >= 60.0 else "")
    return [Finding(
        "insufficient_signal", Severity.ADVISORY, t0, t0 + n / fs,
        rule=f"signal quality: < {th.min_valid_fraction:.0%} valid fetal signal in the window",
        sentence=(f"Only {fraction:.0%} of the last {n / fs / 60:.0f} min is usable fetal signal{missing}: "
                  "no CTG interpretation"),
        values={"valid_fraction": fraction, **({"no_data_fraction": no_data_fraction} if missing else {})},
    )]
