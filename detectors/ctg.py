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

import warnings
from dataclasses import dataclass, field

import numpy as np

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
from detectors.quality import DEFAULT_QUALITY, QualityReport, assess_quality
from detectors.thresholds import CtgThresholds, SignalQualityThresholds
from detectors.variability import (
    VariabilityEstimate,
    estimate_variability,
    sinusoidal_minutes,
    trailing_run,
    variability_within,
)

DEFAULT_CTG = CtgThresholds()
FIGO = "FIGO 2015"


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


def _minute_medians(x1: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = x1.size // 60
    if m == 0:
        return np.empty(0), np.empty(0, bool)
    start = x1.size - m * 60
    seg = np.where(usable, x1, np.nan)[start:].reshape(m, 60)
    cov = usable[start:].reshape(m, 60).mean(axis=1)
    ok = cov >= 0.5
    with warnings.catch_warnings():  # all-NaN minutes are expected: med_ok marks them
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(seg, axis=1)
    return med, ok


def _deceleration_finding(dec: Deceleration, t0: float, th: CtgThresholds) -> Finding:
    e = dec.excursion
    minutes = e.duration / 60
    values = {
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


def analyse_ctg(
    fhr: np.ndarray,
    uc: np.ndarray | None = None,
    fs: float = 4.0,
    mhr: np.ndarray | None = None,
    t0: float = 0.0,
    th: CtgThresholds = DEFAULT_CTG,
    qth: SignalQualityThresholds = DEFAULT_QUALITY,
) -> CtgAnalysis:
    """Analyse a CTG history ending now; ``t0`` is the time of its first sample."""
    fhr = np.asarray(fhr, dtype=float).ravel()
    quality = assess_quality(fhr, fs=fs, mhr=mhr, t0=t0, th=qth)
    duration = fhr.size / fs if fs > 0 else 0.0
    findings = list(quality.findings)
    x = quality.clean(fhr)
    x1, v1 = to_1hz(x, quality.valid, fs)
    window = int(th.baseline_window_s)
    recent_valid = float(v1[-window:].mean()) if v1.size else 0.0
    if v1.size < 60 or recent_valid < qth.min_valid_fraction:
        reason = (f"{recent_valid:.0%} usable fetal signal in the last {min(duration, th.baseline_window_s) / 60:.0f} min"
                  if v1.size >= 60 else f"only {duration:.0f} s of data")
        if not any(f.kind == "insufficient_signal" for f in findings):
            findings.append(Finding(
                "insufficient_signal", Severity.ADVISORY, t0, t0 + duration,
                rule=f"signal quality: < {qth.min_valid_fraction:.0%} valid fetal signal, or < 1 min of data",
                sentence=f"Insufficient signal for CTG interpretation ({reason})",
                values={"valid_fraction_recent": recent_valid, "duration_s": duration},
            ))
        return CtgAnalysis(t0, duration, quality, "insufficient_signal", [reason], findings)

    b = baseline_curve(x1, v1, shift_min_s=int(th.acceleration_max_s), shift_bpm=th.deceleration_bpm)
    smooth1 = smooth_trace(x1, v1)
    accels = excursions(x1, v1, smooth1, b, +1, th.acceleration_bpm, th.acceleration_min_s, th.acceleration_max_s)
    decel_exc = excursions(x1, v1, smooth1, b, -1, th.deceleration_bpm, th.deceleration_min_s, None)
    in_event = np.zeros(x1.size, bool)
    in_accel = np.zeros(x1.size, bool)
    for e in accels:
        in_event[e.start:e.end] = True
        in_accel[e.start:e.end] = True
    for e in decel_exc:
        in_event[e.start:e.end] = True
    baseline = window_baseline(x1, v1, b, in_event, th)

    # Variability on the full-rate trace, away from accelerations/decelerations.
    k = max(1, int(round(fs)))
    event_fs = np.repeat(in_event, k)
    event_fs = np.concatenate((event_fs, np.zeros(fhr.size - event_fs.size, bool)))
    variability = estimate_variability(x, quality.valid & ~event_fs, fs, th)
    within = variability_within(
        x, quality.valid, [(a * k, b_ * k) for a, b_ in deceleration_bodies(decel_exc, x1, b, th)], fs, th)
    band_within = [float(np.median([band for band, _ in pieces])) if pieces else np.inf for pieces in within]
    reduced_pieces = [(band, s) for pieces in within for band, s in pieces if band < th.variability_reduced_bpm]
    reduced_in_decels_s = float(sum(s for _, s in reduced_pieces))

    cons: list[Contraction] = []
    if uc is not None:
        u = np.asarray(uc, dtype=float).ravel()[: fhr.size]
        cons = contractions(to_1hz(u, np.isfinite(u), fs)[0], th)
    decels = classify_decelerations(decel_exc, cons, x1, b, band_within, th)

    # Bradycardia / tachycardia: FHR level below 110 / above 160 for > 10 min.
    med, med_ok = _minute_medians(x1, v1)
    brady_min = trailing_run(med < th.bradycardia_bpm, med_ok)
    tachy_min = trailing_run(med > th.tachycardia_bpm, med_ok)
    bradycardia_s, tachycardia_s = brady_min * 60.0, tachy_min * 60.0

    sin_steps = sinusoidal_minutes(x1 - b, v1, ~in_accel, th)
    sin_run = trailing_run(sin_steps, np.ones_like(sin_steps))
    sinusoidal_s = (sin_run + 1) * 60.0 if sin_run else 0.0

    span_s = min(duration, th.tachysystole_average_s)
    recent_cons = [c for c in cons if c.acme >= x1.size - span_s]
    per10 = len(recent_cons) / (span_s / 600.0) if span_s >= 600 and uc is not None else None

    end_t = t0 + duration
    # An acceleration is reported once the FHR is back at the baseline: a rise
    # still going on may be the start of a tachycardia (> 10 min, FIGO 2015).
    for e in (a for a in accels if a.complete):
        findings.append(Finding(
            "acceleration", Severity.INFO, t0 + e.start, t0 + e.end,
            rule=f"{FIGO}: acceleration > {th.acceleration_bpm:.0f} bpm, > {th.acceleration_min_s:.0f} s, < 10 min",
            sentence=f"Acceleration to {e.extreme_bpm:.0f} bpm for {e.duration:.0f} s",
            values={"peak_bpm": round(e.extreme_bpm, 1), "amplitude_bpm": round(e.amplitude, 1), "duration_s": e.duration},
        ))
    findings.extend(_deceleration_finding(d, t0, th) for d in decels)
    if bradycardia_s > th.baseline_window_s - 1:
        level = float(np.nanmedian(med[-brady_min:]))
        sev = Severity.URGENT if level < th.baseline_pathological_low else Severity.ADVISORY
        findings.append(Finding(
            "bradycardia", sev, end_t - bradycardia_s, end_t,
            rule=f"{FIGO}: baseline < {th.bradycardia_bpm:.0f} bpm for > 10 min"
                 + (f"; < {th.baseline_pathological_low:.0f} bpm is pathological" if sev == Severity.URGENT else ""),
            sentence=f"Fetal bradycardia: FHR around {level:.0f} bpm for {bradycardia_s / 60:.0f} min",
            values={"level_bpm": round(level, 1), "duration_s": bradycardia_s},
        ))
    if tachycardia_s > th.baseline_window_s - 1:
        level = float(np.nanmedian(med[-tachy_min:]))
        findings.append(Finding(
            "tachycardia", Severity.ADVISORY, end_t - tachycardia_s, end_t,
            rule=f"{FIGO}: baseline > {th.tachycardia_bpm:.0f} bpm for > 10 min",
            sentence=f"Fetal tachycardia: FHR around {level:.0f} bpm for {tachycardia_s / 60:.0f} min",
            values={"level_bpm": round(level, 1), "duration_s": tachycardia_s},
        ))
    if variability.reduced_s >= th.baseline_window_s:
        path = variability.reduced_s > th.reduced_variability_pathological_s
        findings.append(Finding(
            "reduced_variability", Severity.URGENT if path else Severity.ADVISORY, end_t - variability.reduced_s, end_t,
            rule=f"{FIGO}: variability < {th.variability_reduced_bpm:.0f} bpm; pathological for > 50 min",
            sentence=f"Reduced variability (bandwidth {variability.median_bpm:.1f} bpm) for {variability.reduced_s / 60:.0f} min",
            values={"bandwidth_bpm": variability.median_bpm, "duration_s": variability.reduced_s},
        ))
    if variability.increased_s >= th.baseline_window_s:
        path = variability.increased_s > th.increased_variability_pathological_s
        findings.append(Finding(
            "increased_variability", Severity.URGENT if path else Severity.ADVISORY, end_t - variability.increased_s, end_t,
            rule=f"{FIGO}: variability > {th.variability_increased_bpm:.0f} bpm (saltatory); pathological for > 30 min",
            sentence=f"Increased (saltatory) variability, bandwidth {variability.median_bpm:.0f} bpm, for {variability.increased_s / 60:.0f} min",
            values={"bandwidth_bpm": variability.median_bpm, "duration_s": variability.increased_s},
        ))
    if reduced_in_decels_s > th.reduced_variability_in_decelerations_s:
        low = [band for band, _ in reduced_pieces]
        findings.append(Finding(
            "reduced_variability_in_decelerations", Severity.URGENT,
            t0 + min(e.start for e in decel_exc), end_t,
            rule=f"{FIGO}: variability < {th.variability_reduced_bpm:.0f} bpm for "
                 f"> {th.reduced_variability_in_decelerations_s / 60:.0f} min during decelerations (pathological)",
            sentence=(f"Reduced variability inside decelerations for {reduced_in_decels_s / 60:.0f} min "
                      f"(bandwidth {np.median(low):.1f} bpm)"),
            values={"duration_s": reduced_in_decels_s, "bandwidth_bpm": round(float(np.median(low)), 1)},
        ))
    if sinusoidal_s >= th.baseline_window_s:
        path = sinusoidal_s > th.sinusoidal_pathological_s
        findings.append(Finding(
            "sinusoidal", Severity.URGENT if path else Severity.ADVISORY, end_t - sinusoidal_s, end_t,
            rule=f"{FIGO}: regular undulation 5-15 bpm at 3-5 cycles/min without accelerations; pathological for > 30 min",
            sentence=f"Sinusoidal pattern for {sinusoidal_s / 60:.0f} min",
            values={"duration_s": sinusoidal_s},
        ))
    if per10 is not None and per10 > th.tachysystole_per_10min:
        findings.append(Finding(
            "tachysystole", Severity.ADVISORY, end_t - span_s, end_t,
            rule=f"{FIGO}: > {th.tachysystole_per_10min:.0f} contractions in 10 min, averaged over 30 min",
            sentence=f"Tachysystole: {per10:.1f} contractions per 10 min over the last {span_s / 60:.0f} min",
            values={"per_10min": round(per10, 2), "span_s": span_s},
        ))

    # Repetitive decelerations: associated with > 50% of contractions (FIGO 2015).
    with_decel = {id(d.contraction): d for d in decels if d.contraction is not None}
    rep_fraction = len([c for c in recent_cons if id(c) in with_decel]) / len(recent_cons) if recent_cons else 0.0
    rep_kinds = sorted({with_decel[id(c)].kind for c in recent_cons if id(c) in with_decel})
    repetitive = len(recent_cons) >= 2 and rep_fraction > th.repetitive_fraction
    late_like = [c for c in recent_cons if id(c) in with_decel and with_decel[id(c)].kind in ("late", "prolonged")]
    repetitive_late = len(recent_cons) >= 2 and len(late_like) / len(recent_cons) > th.repetitive_fraction
    if repetitive:
        findings.append(Finding(
            "repetitive_decelerations", Severity.URGENT if repetitive_late else Severity.ADVISORY,
            end_t - span_s, end_t,
            rule=f"{FIGO}: decelerations with > {th.repetitive_fraction:.0%} of contractions",
            sentence=(f"Decelerations after {len(with_decel)} of the last {len(recent_cons)} contractions "
                      f"({', '.join(rep_kinds)})"),
            values={"fraction": round(rep_fraction, 2), "contractions": len(recent_cons), "kinds": rep_kinds},
        ))

    # FIGO 2015 classification.
    pathological: list[str] = []
    suspicious: list[str] = []
    if baseline.determinable:
        bl = baseline.rounded
        if bl < th.baseline_pathological_low:
            pathological.append(f"baseline {bl:.0f} bpm < {th.baseline_pathological_low:.0f}")
        elif not (th.baseline_normal_low <= bl <= th.baseline_normal_high):
            suspicious.append(f"baseline {bl:.0f} bpm outside {th.baseline_normal_low:.0f}-{th.baseline_normal_high:.0f}")
    else:
        suspicious.append(f"baseline undeterminable ({baseline.reason})")
    if variability.reduced_s > th.reduced_variability_pathological_s:
        pathological.append(f"reduced variability for {variability.reduced_s / 60:.0f} min")
    if variability.increased_s > th.increased_variability_pathological_s:
        pathological.append(f"increased variability for {variability.increased_s / 60:.0f} min")
    if sinusoidal_s > th.sinusoidal_pathological_s:
        pathological.append(f"sinusoidal pattern for {sinusoidal_s / 60:.0f} min")
    if reduced_in_decels_s > th.reduced_variability_in_decelerations_s:
        pathological.append(f"reduced variability within decelerations for {reduced_in_decels_s / 60:.0f} min")
    longest_prolonged = max((d.excursion.duration for d in decels if d.kind == "prolonged"), default=0.0)
    if longest_prolonged > th.acute_hypoxia_deceleration_s:
        pathological.append(f"prolonged deceleration of {longest_prolonged / 60:.1f} min")
    rep_limit = (th.repetitive_pathological_reduced_var_s if variability.reduced_s > 0
                 else th.repetitive_pathological_s)
    if repetitive_late and span_s >= rep_limit:
        pathological.append(f"repetitive late/prolonged decelerations over {span_s / 60:.0f} min")
    if variability.median_bpm is not None and not (
        th.variability_reduced_bpm <= variability.median_bpm <= th.variability_increased_bpm
    ):
        suspicious.append(f"variability {variability.median_bpm:.1f} bpm outside 5-25")
    if repetitive:
        suspicious.append(f"repetitive decelerations ({', '.join(rep_kinds)})")
    if pathological:
        label, reasons = "pathological", pathological + suspicious
    elif suspicious:
        label, reasons = "suspicious", suspicious
    else:
        label, reasons = "normal", ["baseline 110-160, variability 5-25, no repetitive decelerations"]
    if label != "normal":
        findings.append(Finding(
            f"ctg_{label}", Severity.URGENT if label == "pathological" else Severity.ADVISORY,
            end_t - min(duration, th.baseline_window_s), end_t,
            rule=f"{FIGO} classification: {label}",
            sentence=f"CTG {label}: " + "; ".join(reasons),
            values={"reasons": reasons},
        ))
    return CtgAnalysis(
        t0=t0, duration_s=duration, quality=quality, classification=label, reasons=reasons, findings=findings,
        baseline=baseline, variability=variability, accelerations=accels, decelerations=decels,
        contractions=cons, contractions_per_10min=per10, bradycardia_s=bradycardia_s,
        tachycardia_s=tachycardia_s, sinusoidal_s=sinusoidal_s, reduced_in_decelerations_s=reduced_in_decels_s,
        baseline_curve=b,
    )
