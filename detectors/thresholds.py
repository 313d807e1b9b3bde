"""Clinical thresholds, each with the publication it comes from.

Every value is a default that a hospital may change (its own chart, its own
policy); detectors take these objects as arguments and never hard-code a
number of their own.

Sources:
- FIGO 2015: Ayres-de-Campos D, Spong CY, Chandraharan E. FIGO consensus
  guidelines on intrapartum fetal monitoring: Cardiotocography. Int J Gynaecol
  Obstet 2015;131:13-24.
- NICHD 2008: Macones GA, Hankins GD, Spong CY, Hauth J, Moore T. The 2008
  NICHD workshop report on electronic fetal monitoring. Obstet Gynecol
  2008;112:661-6 (baseline rounding to 5 bpm; >= 2 min of identifiable
  baseline in a 10-min window).
- MEOWS: Singh S, McGlennan A, England A, Simons R. A validation study of the
  CEMACH recommended modified early obstetric warning system (MEOWS).
  Anaesthesia 2012;67:12-18.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SignalQualityThresholds:
    #: FHR outside this range is not a plausible fetal heart rate (FIGO 2015
    #: paper scale 50-210 bpm; values beyond are treated as artefact).
    min_plausible_bpm: float = 50.0
    max_plausible_bpm: float = 210.0
    #: A sample farther than this from its 15-s running median is a spike
    #: (artefact criterion of a 25-bpm jump, as used in FHR preprocessing
    #: literature, e.g. the FHRMA toolbox, Boudet et al. 2020).
    spike_bpm: float = 25.0
    spike_max_s: float = 5.0
    #: Share of valid samples needed before any clinical conclusion is drawn
    #: (a window with more than half lost is "insufficient signal").
    min_valid_fraction: float = 0.5
    good_valid_fraction: float = 0.8
    #: A loss of the FHR this long is reported (ctgwatch's own choice: shorter
    #: drop-outs are part of every Doppler trace and only lower the grade).
    loss_event_min_s: float = 15.0
    #: The per-packet rules (detectors.fast) bridge drop-outs up to this long
    #: inside a deceleration or bradycardia run (ctgwatch's own choice).
    fast_rule_max_gap_s: float = 10.0
    #: Maternal heart rate capture (FIGO 2015: when the FHR and the maternal
    #: heart rate coincide, the monitor may be recording the mother; confirm
    #: the fetal heart). The numbers below are ctgwatch's own, tuned on the
    #: even-numbered half of the FHRMA expert-marked training recordings and
    #: checked on the odd half (docs/EVALUATION.md): a Doppler trace of the
    #: mother's heart is noisy beside the smooth maternal channel, so the
    #: match is judged by its density over a minute, not sample by sample.
    #: A sample is "near" when within ``mhr_match_bpm`` of the maternal rate;
    #: a stretch is capture when, over ``mhr_window_s`` around it, the channels
    #: overlap for at least ``mhr_min_overlap`` of the time and at least
    #: ``mhr_min_near_fraction`` of the overlap is near, for ``mhr_min_s``.
    mhr_match_bpm: float = 8.0
    mhr_window_s: float = 60.0
    mhr_min_overlap: float = 0.5
    mhr_min_near_fraction: float = 0.6
    mhr_min_s: float = 30.0
    #: ... with the median distance over the stretch at most this much,
    mhr_median_diff_bpm: float = 4.0
    #: ... and following the mother's changes: the 5-s medians of both traces
    #: vary (standard deviation >= ``mhr_min_variation_bpm``) and correlate.
    #: A fetal deceleration or bradycardia that merely sits at the mother's
    #: rate does not follow her, and stays fetal signal.
    #: The correlation must also be significant (one-sided p below this, one
    #: independent value per 5 s), so a short stretch needs a closer match.
    mhr_min_variation_bpm: float = 1.0
    mhr_min_correlation: float = 0.2
    mhr_tracking_p_value: float = 0.05
    #: The doubled maternal rate (Doppler counting artefact) must match longer
    #: and follow more closely: a fetal tachycardia can sit near twice the
    #: maternal rate by coincidence.
    mhr_double_min_s: float = 60.0
    mhr_double_min_correlation: float = 0.9
    #: A captured stretch goes on where the maternal channel drops out, until
    #: the trace jumps (5-s median moves more than ``capture_jump_bpm`` within
    #: a second), the signal is lost for more than ``capture_max_gap_s`` or the
    #: maternal channel comes back far from the trace: the fetal heart returns
    #: with a jump, not a glide.
    capture_jump_bpm: float = 15.0
    capture_max_gap_s: float = 30.0
    #: Halving/doubling: FHR at this ratio (+-tolerance) of the reference,
    #: entered by an abrupt jump.
    ratio_tolerance: float = 0.08


@dataclass(frozen=True)
class CtgThresholds:
    """FIGO 2015 intrapartum CTG definitions (table in docs/CLINICAL.md)."""

    # Baseline: FIGO 2015 normal 110-160 bpm; < 100 is a pathological feature.
    baseline_normal_low: float = 110.0
    baseline_normal_high: float = 160.0
    baseline_pathological_low: float = 100.0
    baseline_round_to: float = 5.0  # NICHD 2008
    baseline_min_stable_s: float = 120.0  # NICHD 2008: >= 2 min in any 10-min window
    baseline_window_s: float = 600.0  # FIGO 2015: estimated over 10-min periods
    # Bradycardia / tachycardia: FIGO 2015, baseline < 110 or > 160 for > 10 min.
    bradycardia_bpm: float = 110.0
    tachycardia_bpm: float = 160.0
    # Variability: FIGO 2015, bandwidth in 1-min segments; normal 5-25 bpm.
    variability_segment_s: float = 60.0
    variability_reduced_bpm: float = 5.0
    variability_increased_bpm: float = 25.0
    reduced_variability_pathological_s: float = 50 * 60.0  # FIGO: < 5 bpm for > 50 min
    increased_variability_pathological_s: float = 30 * 60.0  # FIGO: > 25 bpm for > 30 min
    reduced_variability_in_decelerations_s: float = 3 * 60.0  # FIGO: < 5 bpm for > 3 min during decelerations
    # Accelerations: FIGO 2015, > 15 bpm above baseline, > 15 s, < 10 min.
    acceleration_bpm: float = 15.0
    acceleration_min_s: float = 15.0
    acceleration_max_s: float = 10 * 60.0
    # Decelerations: FIGO 2015, > 15 bpm below baseline, > 15 s.
    deceleration_bpm: float = 15.0
    deceleration_min_s: float = 15.0
    prolonged_deceleration_s: float = 3 * 60.0  # FIGO: > 3 min
    acute_hypoxia_deceleration_s: float = 5 * 60.0  # FIGO: > 5 min with FHR < 80 bpm
    acute_hypoxia_bpm: float = 80.0
    # Deceleration shape (FIGO 2015): variable = onset to nadir < 30 s;
    # late = gradual, starts > 20 s after contraction onset, nadir after acme,
    # return after the contraction ends.
    abrupt_onset_to_nadir_s: float = 30.0
    late_onset_lag_s: float = 20.0
    early_nadir_to_acme_s: float = 20.0  # early: nadir coincides with the acme
    # Atypical variable features (NICE CG190/NG229 "concerning characteristics").
    atypical_duration_s: float = 60.0
    atypical_depth_bpm: float = 60.0
    # Repetitive: associated with > 50% of contractions (FIGO 2015).
    repetitive_fraction: float = 0.5
    repetitive_pathological_s: float = 30 * 60.0  # FIGO: for > 30 min
    repetitive_pathological_reduced_var_s: float = 20 * 60.0  # (> 20 min with reduced variability)
    # Sinusoidal (FIGO 2015): amplitude 5-15 bpm, 3-5 cycles/min, > 30 min, no accelerations.
    sinusoidal_min_amplitude_bpm: float = 5.0
    sinusoidal_max_amplitude_bpm: float = 15.0
    sinusoidal_min_cpm: float = 3.0
    sinusoidal_max_cpm: float = 5.0
    sinusoidal_power_fraction: float = 0.6
    sinusoidal_pathological_s: float = 30 * 60.0
    #: Over the whole labour a pattern's duration is counted on the minutes that show it (FIGO 2015:
    #: variability is judged in baseline segments, away from accelerations and decelerations). Minutes
    #: that cannot be judged (a deceleration, an acceleration, signal loss) neither end it nor count, up to
    #: this long in a row; a judged minute without the pattern ends it. Project choice, not FIGO's: a
    #: prolonged deceleration (> 3 min) plus its shoulders fits, a longer loss of signal does not.
    pattern_gap_s: float = 5 * 60.0
    # Tachysystole (FIGO 2015): > 5 contractions in 10 min, averaged over 30 min.
    tachysystole_per_10min: float = 5.0
    tachysystole_average_s: float = 30 * 60.0
    # Contraction detection on the tocogram (device units, mmHg for IUP).
    contraction_min_amplitude: float = 10.0
    contraction_min_s: float = 30.0
    #: A deceleration belongs to a contraction that starts up to this long
    #: before it (or overlaps it).
    contraction_association_s: float = 60.0


@dataclass(frozen=True)
class Band:
    """A closed interval ``low <= x <= high`` (either side may be open-ended)."""

    low: float = float("-inf")
    high: float = float("inf")

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class MeowsParameter:
    """Red and yellow trigger bands of one vital sign; red wins over yellow."""

    name: str
    unit: str
    red: tuple[Band, ...] = ()
    yellow: tuple[Band, ...] = ()


def _default_meows() -> dict[str, MeowsParameter]:
    # Singh et al. 2012 (MEOWS), as in docs/CLINICAL.md. Charts differ
    # between hospitals: every band is configurable.
    inf = float("inf")
    return {
        "temperature_c": MeowsParameter(
            "temperature", "°C", red=(Band(-inf, 34.999), Band(38.001, inf)), yellow=(Band(35.0, 36.0),)
        ),
        "systolic_bp": MeowsParameter(
            "systolic BP", "mmHg", red=(Band(-inf, 89.999), Band(160.001, inf)),
            yellow=(Band(150.0, 160.0), Band(90.0, 100.0)),
        ),
        "diastolic_bp": MeowsParameter("diastolic BP", "mmHg", red=(Band(100.001, inf),), yellow=(Band(90.0, 100.0),)),
        "heart_rate": MeowsParameter(
            "heart rate", "/min", red=(Band(-inf, 39.999), Band(120.001, inf)),
            yellow=(Band(100.0, 120.0), Band(40.0, 50.0)),
        ),
        "respiratory_rate": MeowsParameter(
            "respiratory rate", "/min", red=(Band(-inf, 9.999), Band(30.001, inf)), yellow=(Band(21.0, 30.0),)
        ),
        "spo2": MeowsParameter("SpO2", "%", red=(Band(-inf, 94.999),)),
    }


@dataclass(frozen=True)
class MeowsChart:
    """MEOWS trigger chart: one red or two yellow triggers call for urgent review."""

    parameters: dict[str, MeowsParameter] = field(default_factory=_default_meows)
    #: AVPU: 'voice' is a yellow trigger, 'pain' and 'unresponsive' red.
    avpu_red: tuple[str, ...] = ("P", "U")
    avpu_yellow: tuple[str, ...] = ("V",)
    yellow_triggers_for_review: int = 2
    #: Trend rule: heart rate rising and systolic BP falling by at least these
    #: amounts over the trend window, or a shock index (HR / SBP) at or above
    #: ``shock_index``. Obstetric shock index >= 0.9: Nathan HL et al., BJOG
    #: 2015;122:268-275 (postpartum haemorrhage).
    trend_window_s: float = 60 * 60.0
    trend_hr_rise: float = 15.0
    trend_sbp_fall: float = 15.0
    shock_index: float = 0.9


# -- Method constants --------------------------------------------------------------------------
# Signal-processing choices of ctgwatch's own (not clinical thresholds): kept
# here with the tables so that no detector module holds a number of its own.

# Baseline (detectors.baseline).
#: Exclusion limits (bpm) of the successive refinement passes, and the
#: low-pass length (s): the Mantel-style narrowing from coarse to fine.
REFINEMENT_LIMITS = (25.0, 20.0, 15.0, 10.0)
LOWPASS_S = 120
#: Smoothing (s) before judging distance from the baseline, and the margin
#: (s, total) by which an excluded excursion is widened on both sides.
SMOOTH_S = 10
EXCLUSION_MARGIN_S = 31
#: Span and step (s) of the running anchor level the baseline is refined around.
ANCHOR_SPAN_S = 20 * 60
ANCHOR_STEP_S = 60

# Accelerations, decelerations, contractions (detectors.events).
#: An excursion starts and ends where the FHR comes back within this many
#: bpm of the baseline (its "departure" and "return").
RETURN_BPM = 5.0
#: Short gaps of signal inside an excursion are bridged (seconds).
BRIDGE_S = 5
#: Heavier smoothing (s) for the onset-to-nadir measurement, where residual
#: variability would otherwise decide between "abrupt" and "gradual".
FALL_SMOOTH_S = 15
#: Tocogram: smoothing (s) before peak finding, and the span (s) of the
#: running minimum that estimates the basal tone.
UC_SMOOTH_S = 10
UC_TONE_WINDOW_S = 180

# Variability (detectors.variability).
#: Bandwidth is taken between these percentiles of a segment, not max-min,
#: so that one residual artefact sample cannot make a flat trace look normal.
BAND_PERCENTILES = (2.5, 97.5)
#: A 1-min segment is assessed when at least this share of it is usable.
MIN_SEGMENT_COVERAGE = 0.5
