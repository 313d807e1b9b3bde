"""CTG analysis of one patient's window: features, findings, FIGO class.

``analyse_ctg`` takes the FHR (and UC, optionally the maternal HR channel) of
the last N minutes and returns everything a clinician reads on the trace,
each feature as a :class:`Finding` with its evidence. Definitions: FIGO 2015
(thresholds in :mod:`detectors.thresholds`). Histories longer than 10 min let
duration rules (reduced variability > 50 min, repetitive late decelerations
> 30 min, sinusoidal > 30 min) be judged; on a shorter history they are
reported with the duration seen so far.
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from detectors.baseline import BaselineEstimate, baseline_curve, to_1hz, window_baseline
from detectors.events import (
    Contraction,
    Deceleration,
    Excursion,
    classify_decelerations,
    contractions,
    excursions,
    smooth_trace,
)
from detectors.findings import Finding, Severity
from detectors.quality import DEFAULT_QUALITY, ModelVerdict, QualityReport, assess_quality
from detectors.rowstats import row_nanmedians
from detectors.runs import row_true_fractions
from detectors.thresholds import CtgThresholds, SignalQualityThresholds
from detectors.variability import (
    VariabilityEstimate,
    estimate_variability,
    sinusoidal_steps,
    trailing_run,
    variability_within,
)

DEFAULT_CTG = CtgThresholds()
#: How far back the deceleration burden reaches (seconds): Cahill et al. 2018 (Am J Obstet Gynecol
#: 218:523.e1) found the decelerations of the last 120 min before birth the best predictor of acidaemia
#: among the FHR measures they compared. An input of the compromise risk, not a FIGO rule.
DECELERATION_BURDEN_S = 7200.0
FIGO = "FIGO 2015"
#: Seconds either side of an acceleration or deceleration left out of the variability (its shoulders).
EVENT_SHOULDER_S = 30


@dataclass(frozen=True)
class CtgAnalysis:
    t0: float
    duration_s: float
    quality: QualityReport
    classification: str  # "normal", "suspicious", "pathological" or "insufficient_signal"
    reasons: list[str]
    findings: list[Finding]
    baseline: BaselineEstimate | None = None
    variability: VariabilityEstimate | None = None
    accelerations: list[Excursion] = field(default_factory=list)
    decelerations: list[Deceleration] = field(default_factory=list)
    contractions: list[Contraction] = field(default_factory=list)
    contractions_per_10min: float | None = None
    bradycardia_s: float = 0.0
    tachycardia_s: float = 0.0
    sinusoidal_s: float = 0.0
    reduced_in_decelerations_s: float = 0.0
    baseline_curve: np.ndarray | None = None  # 1 Hz, for drawing
    #: The window's measured features (None when it could not be interpreted): what
    #: :mod:`detectors.labour` takes each minute's measures from.
    features: CtgFeatures | None = field(default=None, repr=False, compare=False)


def _minute_medians(x1: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = x1.size // 60
    if m == 0:
        return np.empty(0), np.empty(0, bool)
    start = x1.size - m * 60
    seg = np.where(usable, x1, np.nan)[start:].reshape(m, 60)
    cov = row_true_fractions(usable[start:].reshape(m, 60))
    ok = cov >= 0.5
    # np.nanmedian(seg, axis=1), in one pass (numpy's goes through masked arrays: 15% of an analysis)
    return row_nanmedians(seg), ok


def _deceleration_finding(dec: Deceleration, t0: float, th: CtgThresholds) -> Finding:
    e = dec.excursion
    minutes = e.duration / 60
    values: dict[str, Any] = {
        "nadir_bpm": round(e.extreme_bpm, 1), "depth_bpm": round(e.amplitude, 1),
        "baseline_bpm": round(e.baseline_bpm, 1), "duration_s": e.duration,
        "onset_to_nadir_s": dec.onset_to_nadir_s, "complete": e.complete, **dec.timing,
    }
    if dec.atypical:
        values["atypical_features"] = dec.atypical
    ongoing = "" if e.complete else " (ongoing)"
    if dec.kind == "prolonged":
        acute = e.duration > th.acute_hypoxia_deceleration_s and e.extreme_bpm < th.acute_hypoxia_bpm
        sev = Severity.EMERGENCY if acute else Severity.URGENT
        rule = f"{FIGO}: prolonged deceleration, > {th.prolonged_deceleration_s / 60:.0f} min" + (
            f"; > {th.acute_hypoxia_deceleration_s / 60:.0f} min below {th.acute_hypoxia_bpm:.0f} bpm suggests acute hypoxia"
            if acute else "")
        sentence = f"Prolonged deceleration for {minutes:.1f} min{ongoing}, nadir {e.extreme_bpm:.0f} bpm"
    elif dec.kind == "late":
        # One late deceleration is a warning; FIGO 2015 makes late decelerations pathological
        # when repetitive for > 30 min, which the repetitive-deceleration and classification
        # findings raise as urgent. An urgent alert here escalated every single one.
        sev = Severity.ADVISORY
        rule = f"{FIGO}: late deceleration (gradual, nadir after the contraction's acme, return after its end)"
        sentence = (f"Late deceleration, nadir {e.extreme_bpm:.0f} bpm "
                    f"{dec.timing.get('nadir_after_acme_s', 0):.0f} s after the contraction peak")
    elif dec.kind == "variable":
        sev = Severity.ADVISORY if dec.atypical else Severity.INFO
        rule = f"{FIGO}: variable deceleration (onset to nadir < {th.abrupt_onset_to_nadir_s:.0f} s)"
        sentence = f"Variable deceleration to {e.extreme_bpm:.0f} bpm for {e.duration:.0f} s" + (
            f" with atypical features: {'; '.join(dec.atypical)}" if dec.atypical else "")
    elif dec.kind == "early":
        sev = Severity.INFO
        rule = f"{FIGO}: early deceleration (gradual, nadir with the contraction's acme)"
        sentence = f"Early deceleration to {e.extreme_bpm:.0f} bpm, mirroring the contraction"
    else:
        sev = Severity.ADVISORY
        rule = f"{FIGO}: deceleration > {th.deceleration_bpm:.0f} bpm, > {th.deceleration_min_s:.0f} s, no contraction to relate it to"
        sentence = f"Deceleration to {e.extreme_bpm:.0f} bpm for {e.duration:.0f} s, not related to a contraction"
    return Finding(f"{dec.kind}_deceleration", sev, t0 + e.start, t0 + e.end, rule, sentence, values)


def in_progress_deceleration(finding: Finding) -> bool:
    """A deceleration still under way at the end of the history, not yet prolonged:
    its type (early/late/variable) is known only when it ends, so it raises no alert yet."""
    return (finding.kind.endswith("_deceleration") and finding.kind != "prolonged_deceleration"
            and finding.values.get("complete") is False)


def deceleration_bodies(
    decels: list[Excursion], x1: np.ndarray, b: np.ndarray, th: CtgThresholds
) -> list[tuple[int, int]]:
    """The part of each deceleration (1-Hz indices) from the first to the last second
    at least 15 bpm below the baseline: its body, without the shoulders (empty if none)."""
    out = []
    for e in decels:
        with np.errstate(invalid="ignore"):
            deep = np.flatnonzero(x1[e.start:e.end] <= b[e.start:e.end] - th.deceleration_bpm)
        out.append((e.start + int(deep[0]), e.start + int(deep[-1]) + 1) if deep.size else (e.start, e.start))
    return out


@dataclass(frozen=True)
class PreparedSignal:
    """The FHR after the signal-quality step, at full rate and at 1 Hz."""

    t0: float
    fs: float
    duration_s: float
    quality: QualityReport
    fhr_clean: np.ndarray  # full rate, samples judged not fetal removed
    fhr_1hz: np.ndarray
    valid_1hz: np.ndarray

    @property
    def end_t(self) -> float:
        return self.t0 + self.duration_s


@dataclass(frozen=True)
class Repetition:
    """Decelerations with the contractions of the last ``span_s`` (FIGO 2015: repetitive if > 50 %)."""

    span_s: float
    contractions: int  # contractions whose acme lies in the span
    with_deceleration: int  # of those, how many a deceleration followed
    kinds: list[str]
    repetitive: bool
    repetitive_late: bool
    per_10min: float | None

    @property
    def fraction(self) -> float:
        return self.with_deceleration / self.contractions if self.contractions else 0.0


@dataclass(frozen=True)
class CtgFeatures:
    """Every FIGO 2015 feature measured on one interpretable history."""

    baseline_1hz: np.ndarray
    baseline: BaselineEstimate
    variability: VariabilityEstimate
    accelerations: list[Excursion]
    decelerations: list[Deceleration]
    contractions: list[Contraction]
    repetition: Repetition
    bradycardia_s: float
    bradycardia_level: float | None
    tachycardia_s: float
    tachycardia_level: float | None
    sinusoidal_s: float
    reduced_in_decelerations_s: float
    reduced_in_decelerations_bpm: float | None
    first_deceleration_s: float | None
    #: Per 1-min step (aligned to the end of the history): whether the 2-min span ending there is
    #: sinusoidal, and whether it could be judged at all (enough signal, no acceleration).
    sinusoidal_steps: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    sinusoidal_assessable: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    #: Median FHR per whole minute (aligned to the end) and whether half the minute was valid.
    minute_levels: np.ndarray = field(default_factory=lambda: np.empty(0))
    minute_levels_ok: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    #: How long late/prolonged decelerations have been repetitive (FIGO 2015: pathological for > 30 min,
    #: > 20 min with reduced variability). One window: its span when they are repetitive in it;
    #: the whole labour (:mod:`detectors.labour`): the episode's duration.
    repetitive_late_s: float = 0.0
    #: The longest prolonged deceleration that counts now (one window: any in it).
    longest_prolonged_s: float = 0.0
    #: Per deceleration (the order of ``decelerations``), its seconds of reduced variability within.
    reduced_within_s: list[float] = field(default_factory=list)
    #: Seconds in completed decelerations that ended in the last ``DECELERATION_BURDEN_S`` (2 h): one
    #: window, those it holds; the whole labour (:mod:`detectors.labour`), the labour's record of them.
    deceleration_burden_s: float = 0.0


def analyse_ctg(
    fhr: np.ndarray,
    uc: np.ndarray | None = None,
    fs: float = 4.0,
    mhr: np.ndarray | None = None,
    t0: float = 0.0,
    th: CtgThresholds = DEFAULT_CTG,
    qth: SignalQualityThresholds = DEFAULT_QUALITY,
    model_verdict: ModelVerdict | None = None,
) -> CtgAnalysis:
    """Analyse a CTG history ending now: signal quality -> features -> findings -> FIGO class.

    Parameters
    ----------
    fhr, uc, mhr : numpy.ndarray
        FHR (bpm, 0 = signal loss), uterine activity and the maternal HR channel
        (optional) at ``fs`` Hz.
    fs : float
        Sampling rate in Hz.
    t0 : float
        Time of the first sample; every finding's span is on this clock.
    th, qth : CtgThresholds, SignalQualityThresholds
        FIGO 2015 and signal-quality thresholds.
    model_verdict : ModelVerdict or None
        The false-signal model's per-sample verdict (see :func:`detectors.quality.assess_quality`).

    Returns
    -------
    CtgAnalysis
        Features, findings (each with rule, span, values, sentence) and the class.
    """
    signal = prepare_signal(fhr, fs, mhr, t0, qth, model_verdict)
    lacking = lacking_signal_reason(signal, th, qth)
    if lacking is not None:
        return insufficient_analysis(signal, lacking, th, qth)
    return assemble_analysis(signal, measure_features(signal, uc, th), th)


def assemble_analysis(signal: PreparedSignal, features: CtgFeatures, th: CtgThresholds) -> CtgAnalysis:
    """Class, reasons and findings of measured features (one window's, or the whole labour's).

    Parameters
    ----------
    signal : PreparedSignal
        The window the features were measured on (its clock and quality findings).
    features : CtgFeatures
        What :func:`measure_features` measured, or :mod:`detectors.labour`'s whole-labour version of it.
    th : CtgThresholds

    Returns
    -------
    CtgAnalysis
    """
    label, reasons = classify(features, th)
    findings = [*signal.quality.findings, *feature_findings(features, signal, th),
                *classification_findings(label, reasons, signal, th)]
    return CtgAnalysis(
        t0=signal.t0, duration_s=signal.duration_s, quality=signal.quality, classification=label, reasons=reasons,
        findings=findings, baseline=features.baseline, variability=features.variability,
        accelerations=features.accelerations, decelerations=features.decelerations,
        contractions=features.contractions, contractions_per_10min=features.repetition.per_10min,
        bradycardia_s=features.bradycardia_s, tachycardia_s=features.tachycardia_s,
        sinusoidal_s=features.sinusoidal_s, reduced_in_decelerations_s=features.reduced_in_decelerations_s,
        baseline_curve=features.baseline_1hz, features=features,
    )


# -- step 1: signal quality ---------------------------------------------------------------
def prepare_signal(
    fhr: np.ndarray, fs: float, mhr: np.ndarray | None, t0: float, qth: SignalQualityThresholds,
    model_verdict: ModelVerdict | None = None,
) -> PreparedSignal:
    """Judge every sample (loss, artefact, maternal capture, halving/doubling) and keep the fetal ones.

    Parameters
    ----------
    fhr : numpy.ndarray
        FHR at ``fs`` Hz (0 = loss).
    fs : float
        Sampling rate in Hz.
    mhr : numpy.ndarray or None
        Maternal HR channel, if the monitor sends one.
    t0 : float
        Time of the first sample.
    qth : SignalQualityThresholds
        Signal-quality thresholds.
    model_verdict : ModelVerdict or None
        The false-signal model's per-sample verdict, where it judged.

    Returns
    -------
    PreparedSignal
        The quality report and the cleaned FHR at full rate and at 1 Hz.
    """
    fhr = np.asarray(fhr, dtype=float).ravel()
    quality = assess_quality(fhr, fs=fs, mhr=mhr, t0=t0, th=qth, model_verdict=model_verdict)
    clean = quality.clean(fhr)
    fhr_1hz, valid_1hz = to_1hz(clean, quality.valid, fs)
    return PreparedSignal(t0, fs, fhr.size / fs if fs > 0 else 0.0, quality, clean, fhr_1hz, valid_1hz)


def lacking_signal_reason(
    signal: PreparedSignal, th: CtgThresholds, qth: SignalQualityThresholds
) -> str | None:
    """Why the history cannot be interpreted (< 1 min, or too little fetal signal lately), else None."""
    if signal.valid_1hz.size < 60:
        return f"only {signal.duration_s:.0f} s of data"
    recent_valid = float(signal.valid_1hz[-int(th.baseline_window_s):].mean())
    if recent_valid < qth.min_valid_fraction:
        return (f"{recent_valid:.0%} usable fetal signal in the last "
                f"{min(signal.duration_s, th.baseline_window_s) / 60:.0f} min")
    return None


def insufficient_analysis(
    signal: PreparedSignal, reason: str, th: CtgThresholds, qth: SignalQualityThresholds
) -> CtgAnalysis:
    """The analysis of a history that cannot be interpreted: its quality findings and one that says so."""
    v1 = signal.valid_1hz
    recent_valid = float(v1[-int(th.baseline_window_s):].mean()) if v1.size else 0.0
    findings = list(signal.quality.findings)
    if not any(f.kind == "insufficient_signal" for f in findings):
        findings.append(Finding(
            "insufficient_signal", Severity.ADVISORY, signal.t0, signal.end_t,
            rule=f"signal quality: < {qth.min_valid_fraction:.0%} valid fetal signal, or < 1 min of data",
            sentence=f"Insufficient signal for CTG interpretation ({reason})",
            values={"valid_fraction_recent": recent_valid, "duration_s": signal.duration_s},
        ))
    return CtgAnalysis(signal.t0, signal.duration_s, signal.quality, "insufficient_signal", [reason], findings)


# -- step 2: features -------------------------------------------------------------------------
def measure_features(signal: PreparedSignal, uc: np.ndarray | None, th: CtgThresholds) -> CtgFeatures:
    """Baseline, variability, accelerations, decelerations, contractions and the duration rules.

    Parameters
    ----------
    signal : PreparedSignal
        The output of :func:`prepare_signal` (interpretable).
    uc : numpy.ndarray or None
        Uterine activity at the same rate, if recorded.
    th : CtgThresholds
        FIGO 2015 thresholds.

    Returns
    -------
    CtgFeatures
    """
    x1, v1 = signal.fhr_1hz, signal.valid_1hz
    b = baseline_curve(x1, v1, shift_min_s=int(th.acceleration_max_s), shift_bpm=th.deceleration_bpm)
    smooth1 = smooth_trace(x1, v1)
    accels = excursions(x1, v1, smooth1, b, +1, th.acceleration_bpm, th.acceleration_min_s, th.acceleration_max_s)
    decel_exc = excursions(x1, v1, smooth1, b, -1, th.deceleration_bpm, th.deceleration_min_s, None)
    in_accel = _mask_of(accels, x1.size)
    in_event = in_accel | _mask_of(decel_exc, x1.size)
    variability = _variability_outside_events(signal, _with_shoulders(in_event), th)
    band_within, reduced_pieces, reduced_each = _variability_in_decelerations(signal, decel_exc, b, th)
    cons = _contractions(uc, signal, th)
    decels = classify_decelerations(decel_exc, cons, x1, b, band_within, th)
    levels, levels_ok = _minute_medians(x1, v1)
    brady_s, brady_level, tachy_s, tachy_level = _rate_runs(levels, levels_ok, th)
    steps, assessable = sinusoidal_steps(x1 - b, v1, ~in_accel, th)
    repetition = assess_repetition(decels, cons, x1.size, signal.duration_s, uc is not None, th)
    return CtgFeatures(
        baseline_1hz=b, baseline=window_baseline(x1, v1, b, in_event, th), variability=variability,
        accelerations=accels, decelerations=decels, contractions=cons,
        repetition=repetition,
        bradycardia_s=brady_s, bradycardia_level=brady_level, tachycardia_s=tachy_s, tachycardia_level=tachy_level,
        sinusoidal_s=_sinusoidal_s(steps),
        reduced_in_decelerations_s=float(sum(s for _, s in reduced_pieces)),
        reduced_in_decelerations_bpm=(round(float(statistics.median([band for band, _ in reduced_pieces])), 1)
                                      if reduced_pieces else None),
        first_deceleration_s=float(min(e.start for e in decel_exc)) if decel_exc else None,
        sinusoidal_steps=steps, sinusoidal_assessable=assessable,
        minute_levels=levels, minute_levels_ok=levels_ok,
        repetitive_late_s=repetition.span_s if repetition.repetitive_late else 0.0,
        longest_prolonged_s=max((d.excursion.duration for d in decels if d.kind == "prolonged"), default=0.0),
        reduced_within_s=reduced_each,
        deceleration_burden_s=float(sum(d.excursion.duration for d in decels
                                        if d.excursion.complete and x1.size - d.excursion.end < DECELERATION_BURDEN_S)),
    )


def _with_shoulders(in_event: np.ndarray) -> np.ndarray:
    """Events widened by their shoulders (``EVENT_SHOULDER_S`` either side): FIGO 2015 judges variability in
    baseline segments, and the fall into and the recovery from a gradual deceleration are not baseline."""
    return maximum_filter1d(in_event.astype(np.uint8), size=2 * EVENT_SHOULDER_S + 1, mode="nearest").astype(bool)


def _mask_of(events: list[Excursion], n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    for e in events:
        mask[e.start:e.end] = True
    return mask


def _full_rate(mask_1hz: np.ndarray, signal: PreparedSignal) -> np.ndarray:
    """A 1-Hz mask repeated to the full-rate samples (the tail that has no whole second stays False)."""
    per_s = max(1, int(round(signal.fs)))
    full = np.repeat(mask_1hz, per_s)
    return np.concatenate((full, np.zeros(signal.fhr_clean.size - full.size, bool)))


def _variability_outside_events(signal: PreparedSignal, in_event: np.ndarray, th: CtgThresholds) -> VariabilityEstimate:
    """Variability on the full-rate trace, away from accelerations and decelerations (FIGO 2015)."""
    usable = signal.quality.valid & ~_full_rate(in_event, signal)
    return estimate_variability(signal.fhr_clean, usable, signal.fs, th)


def _variability_in_decelerations(
    signal: PreparedSignal, decel_exc: list[Excursion], b: np.ndarray, th: CtgThresholds
) -> tuple[list[float], list[tuple[float, float]], list[float]]:
    """Per deceleration its median bandwidth inside its body; every reduced piece (band, seconds);
    and per deceleration its reduced seconds."""
    per_s = max(1, int(round(signal.fs)))
    bodies = [(a * per_s, e * per_s) for a, e in deceleration_bodies(decel_exc, signal.fhr_1hz, b, th)]
    within = variability_within(signal.fhr_clean, signal.quality.valid, bodies, signal.fs, th)
    # statistics.median: the same float as np.median (the middle value, or the two middle ones' sum halved)
    # for a handful of Python floats, without numpy's per-call cost (once per deceleration).
    band_within = [float(statistics.median([band for band, _ in pieces])) if pieces else np.inf for pieces in within]
    reduced = [(band, s) for pieces in within for band, s in pieces if band < th.variability_reduced_bpm]
    each = [float(sum(s for band, s in pieces if band < th.variability_reduced_bpm)) for pieces in within]
    return band_within, reduced, each


def _contractions(uc: np.ndarray | None, signal: PreparedSignal, th: CtgThresholds) -> list[Contraction]:
    if uc is None:
        return []
    u = np.asarray(uc, dtype=float).ravel()[: signal.fhr_clean.size]
    return contractions(to_1hz(u, np.isfinite(u), signal.fs)[0], th)


def _rate_runs(med: np.ndarray, med_ok: np.ndarray, th: CtgThresholds) -> tuple[float, float | None, float, float | None]:
    """Trailing bradycardia / tachycardia (FHR level below 110 / above 160) in seconds, with their level."""
    brady_min = trailing_run(med < th.bradycardia_bpm, med_ok)
    tachy_min = trailing_run(med > th.tachycardia_bpm, med_ok)

    def level(minutes: int) -> float | None:
        if not minutes:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmedian(med[-minutes:]))

    return brady_min * 60.0, level(brady_min), tachy_min * 60.0, level(tachy_min)


def _sinusoidal_s(steps: np.ndarray) -> float:
    """The trailing sinusoidal run of one window: each step is a 2-min span, so n steps cover n + 1 min."""
    run = trailing_run(steps, np.ones_like(steps))
    return (run + 1) * 60.0 if run else 0.0


def assess_repetition(
    decels: list[Deceleration], cons: list[Contraction], n_1hz: int, duration_s: float, has_uc: bool,
    th: CtgThresholds,
) -> Repetition:
    """Decelerations counted with the contractions of the same span (the last 30 min, FIGO 2015).

    Parameters
    ----------
    decels, cons : list
        Typed decelerations (each with its contraction, if related) and contractions.
    n_1hz : int
        Length of the history in seconds (1-Hz samples).
    duration_s : float
        Length of the history.
    has_uc : bool
        Whether uterine activity was recorded (no contraction rate without it).
    th : CtgThresholds

    Returns
    -------
    Repetition
        Both counts over the same contractions: a 60-min history no longer reads
        "decelerations after 20 of the last 10 contractions".
    """
    span_s = min(duration_s, th.tachysystole_average_s)
    recent = [c for c in cons if c.acme >= n_1hz - span_s]
    with_decel = {id(d.contraction): d for d in decels if d.contraction is not None}
    followed = [with_decel[id(c)] for c in recent if id(c) in with_decel]
    late_like = [d for d in followed if d.kind in ("late", "prolonged")]
    enough = len(recent) >= 2
    return Repetition(
        span_s=span_s, contractions=len(recent), with_deceleration=len(followed),
        kinds=sorted({d.kind for d in followed}),
        repetitive=enough and len(followed) / len(recent) > th.repetitive_fraction,
        repetitive_late=enough and len(late_like) / len(recent) > th.repetitive_fraction,
        per_10min=len(recent) / (span_s / 600.0) if span_s >= 600 and has_uc else None,
    )


# -- step 3: findings -------------------------------------------------------------------------
def feature_findings(features: CtgFeatures, signal: PreparedSignal, th: CtgThresholds) -> list[Finding]:
    """Every feature as a finding with its rule, span, values and sentence (annotations and abnormalities)."""
    t0 = signal.t0
    return [
        *_acceleration_findings(features.accelerations, t0, th),
        *(_deceleration_finding(d, t0, th) for d in features.decelerations),
        *_rate_findings(features, signal.end_t, th),
        *_variability_findings(features, signal, th),
        *_pattern_findings(features, signal.end_t, th),
    ]


def _acceleration_findings(accels: list[Excursion], t0: float, th: CtgThresholds) -> list[Finding]:
    # An acceleration is reported once the FHR is back at the baseline: a rise
    # still going on may be the start of a tachycardia (> 10 min, FIGO 2015).
    return [Finding(
        "acceleration", Severity.INFO, t0 + e.start, t0 + e.end,
        rule=f"{FIGO}: acceleration > {th.acceleration_bpm:.0f} bpm, > {th.acceleration_min_s:.0f} s, < 10 min",
        sentence=f"Acceleration to {e.extreme_bpm:.0f} bpm for {e.duration:.0f} s",
        values={"peak_bpm": round(e.extreme_bpm, 1), "amplitude_bpm": round(e.amplitude, 1), "duration_s": e.duration},
    ) for e in accels if e.complete]


def _rate_findings(features: CtgFeatures, end_t: float, th: CtgThresholds) -> list[Finding]:
    out = []
    brady_s, tachy_s = features.bradycardia_s, features.tachycardia_s
    if brady_s > th.baseline_window_s - 1 and features.bradycardia_level is not None:
        level = features.bradycardia_level
        sev = Severity.URGENT if level < th.baseline_pathological_low else Severity.ADVISORY
        out.append(Finding(
            "bradycardia", sev, end_t - brady_s, end_t,
            rule=f"{FIGO}: baseline < {th.bradycardia_bpm:.0f} bpm for > 10 min"
                 + (f"; < {th.baseline_pathological_low:.0f} bpm is pathological" if sev == Severity.URGENT else ""),
            sentence=f"Fetal bradycardia: FHR around {level:.0f} bpm for {brady_s / 60:.0f} min",
            values={"level_bpm": round(level, 1), "duration_s": brady_s},
        ))
    if tachy_s > th.baseline_window_s - 1 and features.tachycardia_level is not None:
        level = features.tachycardia_level
        out.append(Finding(
            "tachycardia", Severity.ADVISORY, end_t - tachy_s, end_t,
            rule=f"{FIGO}: baseline > {th.tachycardia_bpm:.0f} bpm for > 10 min",
            sentence=f"Fetal tachycardia: FHR around {level:.0f} bpm for {tachy_s / 60:.0f} min",
            values={"level_bpm": round(level, 1), "duration_s": tachy_s},
        ))
    return out


def _variability_findings(features: CtgFeatures, signal: PreparedSignal, th: CtgThresholds) -> list[Finding]:
    out = []
    var, end_t = features.variability, signal.end_t
    if var.reduced_s >= th.baseline_window_s:
        path = var.reduced_s > th.reduced_variability_pathological_s
        out.append(Finding(
            "reduced_variability", Severity.URGENT if path else Severity.ADVISORY, end_t - var.reduced_s, end_t,
            rule=f"{FIGO}: variability < {th.variability_reduced_bpm:.0f} bpm; pathological for > 50 min",
            sentence=f"Reduced variability (bandwidth {var.median_bpm:.1f} bpm) for {var.reduced_s / 60:.0f} min",
            values={"bandwidth_bpm": var.median_bpm, "duration_s": var.reduced_s},
        ))
    if var.increased_s >= th.baseline_window_s:
        path = var.increased_s > th.increased_variability_pathological_s
        out.append(Finding(
            "increased_variability", Severity.URGENT if path else Severity.ADVISORY, end_t - var.increased_s, end_t,
            rule=f"{FIGO}: variability > {th.variability_increased_bpm:.0f} bpm (saltatory); pathological for > 30 min",
            sentence=(f"Increased (saltatory) variability, bandwidth {var.median_bpm:.0f} bpm, "
                      f"for {var.increased_s / 60:.0f} min"),
            values={"bandwidth_bpm": var.median_bpm, "duration_s": var.increased_s},
        ))
    within_s = features.reduced_in_decelerations_s
    if within_s > th.reduced_variability_in_decelerations_s and features.first_deceleration_s is not None:
        out.append(Finding(
            "reduced_variability_in_decelerations", Severity.URGENT, signal.t0 + features.first_deceleration_s, end_t,
            rule=f"{FIGO}: variability < {th.variability_reduced_bpm:.0f} bpm for "
                 f"> {th.reduced_variability_in_decelerations_s / 60:.0f} min during decelerations (pathological)",
            sentence=(f"Reduced variability inside decelerations for {within_s / 60:.0f} min "
                      f"(bandwidth {features.reduced_in_decelerations_bpm:.1f} bpm)"),
            values={"duration_s": within_s, "bandwidth_bpm": features.reduced_in_decelerations_bpm},
        ))
    return out


def _pattern_findings(features: CtgFeatures, end_t: float, th: CtgThresholds) -> list[Finding]:
    """Sinusoidal pattern, tachysystole and repetitive decelerations."""
    out = []
    rep = features.repetition
    if features.sinusoidal_s >= th.baseline_window_s:
        path = features.sinusoidal_s > th.sinusoidal_pathological_s
        out.append(Finding(
            "sinusoidal", Severity.URGENT if path else Severity.ADVISORY, end_t - features.sinusoidal_s, end_t,
            rule=f"{FIGO}: regular undulation 5-15 bpm at 3-5 cycles/min without accelerations; pathological for > 30 min",
            sentence=f"Sinusoidal pattern for {features.sinusoidal_s / 60:.0f} min",
            values={"duration_s": features.sinusoidal_s},
        ))
    if rep.per_10min is not None and rep.per_10min > th.tachysystole_per_10min:
        out.append(Finding(
            "tachysystole", Severity.ADVISORY, end_t - rep.span_s, end_t,
            rule=f"{FIGO}: > {th.tachysystole_per_10min:.0f} contractions in 10 min, averaged over 30 min",
            sentence=f"Tachysystole: {rep.per_10min:.1f} contractions per 10 min over the last {rep.span_s / 60:.0f} min",
            values={"per_10min": round(rep.per_10min, 2), "span_s": rep.span_s},
        ))
    if rep.repetitive:
        out.append(Finding(
            "repetitive_decelerations", Severity.URGENT if rep.repetitive_late else Severity.ADVISORY,
            end_t - rep.span_s, end_t,
            rule=f"{FIGO}: decelerations with > {th.repetitive_fraction:.0%} of contractions",
            sentence=(f"Decelerations after {rep.with_deceleration} of the last {rep.contractions} contractions "
                      f"({', '.join(rep.kinds)})"),
            values={"fraction": round(rep.fraction, 2), "contractions": rep.contractions, "kinds": rep.kinds},
        ))
    return out


# -- step 4: classification -------------------------------------------------------------------
def classify(features: CtgFeatures, th: CtgThresholds) -> tuple[str, list[str]]:
    """FIGO 2015 class and its reasons: pathological if any pathological feature, suspicious if any
    suspicious one, else normal.

    Parameters
    ----------
    features : CtgFeatures
    th : CtgThresholds

    Returns
    -------
    (str, list of str)
        ``"normal"``, ``"suspicious"`` or ``"pathological"`` and the reasons a clinician reads.
    """
    pathological = pathological_features(features, th)
    suspicious = suspicious_features(features, th)
    if pathological:
        return "pathological", pathological + suspicious
    if suspicious:
        return "suspicious", suspicious
    return "normal", ["baseline 110-160, variability 5-25, no repetitive decelerations"]


def pathological_features(features: CtgFeatures, th: CtgThresholds) -> list[str]:
    """FIGO 2015 pathological features present in the history."""
    out = []
    var = features.variability
    level = features.baseline.rounded if features.baseline.determinable else None
    if level is not None and level < th.baseline_pathological_low:
        out.append(f"baseline {level:.0f} bpm < {th.baseline_pathological_low:.0f}")
    if var.reduced_s > th.reduced_variability_pathological_s:
        out.append(f"reduced variability for {var.reduced_s / 60:.0f} min")
    if var.increased_s > th.increased_variability_pathological_s:
        out.append(f"increased variability for {var.increased_s / 60:.0f} min")
    if features.sinusoidal_s > th.sinusoidal_pathological_s:
        out.append(f"sinusoidal pattern for {features.sinusoidal_s / 60:.0f} min")
    if features.reduced_in_decelerations_s > th.reduced_variability_in_decelerations_s:
        out.append(f"reduced variability within decelerations for {features.reduced_in_decelerations_s / 60:.0f} min")
    if features.longest_prolonged_s > th.acute_hypoxia_deceleration_s:
        out.append(f"prolonged deceleration of {features.longest_prolonged_s / 60:.1f} min")
    # "with reduced variability": reduced now, by the run going on or by the last 10 min's median bandwidth
    reduced_now = var.reduced_s > 0 or (var.median_bpm is not None and var.median_bpm < th.variability_reduced_bpm)
    rep_limit = th.repetitive_pathological_reduced_var_s if reduced_now else th.repetitive_pathological_s
    if features.repetitive_late_s >= rep_limit:
        out.append(f"repetitive late/prolonged decelerations over {features.repetitive_late_s / 60:.0f} min")
    return out


def suspicious_features(features: CtgFeatures, th: CtgThresholds) -> list[str]:
    """FIGO 2015 suspicious features present in the history."""
    out = []
    baseline, var = features.baseline, features.variability
    level = baseline.rounded if baseline.determinable else None
    if level is None:
        out.append(f"baseline undeterminable ({baseline.reason})")
    elif level >= th.baseline_pathological_low and not (th.baseline_normal_low <= level <= th.baseline_normal_high):
        out.append(f"baseline {level:.0f} bpm outside {th.baseline_normal_low:.0f}-{th.baseline_normal_high:.0f}")
    if var.median_bpm is not None and not (th.variability_reduced_bpm <= var.median_bpm <= th.variability_increased_bpm):
        out.append(f"variability {var.median_bpm:.1f} bpm outside 5-25")
    if features.repetition.repetitive:
        out.append(f"repetitive decelerations ({', '.join(features.repetition.kinds)})")
    return out


def classification_findings(
    label: str, reasons: list[str], signal: PreparedSignal, th: CtgThresholds
) -> list[Finding]:
    """The class as a finding when it is not normal (empty when normal)."""
    if label == "normal":
        return []
    return [Finding(
        f"ctg_{label}", Severity.URGENT if label == "pathological" else Severity.ADVISORY,
        signal.end_t - min(signal.duration_s, th.baseline_window_s), signal.end_t,
        rule=f"{FIGO} classification: {label}",
        sentence=f"CTG {label}: " + "; ".join(reasons),
        values={"reasons": reasons},
    )]
