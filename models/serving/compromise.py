"""The fetal-compromise risk: P(pH < 7.05) and P(pH < 7.15) given the labour so far, with its reasons.

One score stacks what the project knows about a labour at one minute:

- the whole-labour FIGO 2015 analysis (:mod:`detectors.labour`): the class, the baseline, the
  variability and how long it has been reduced, the decelerations of the last 30 min and how long
  late ones have been repetitive, the longest prolonged deceleration;
- the acidaemia-risk LSTM (``ctg_lstm``) on the last hour, and its per-minute risks averaged over the last hour;
- the autoencoder (``ctg_autoencoder``): the 90th percentile of its per-minute scores over the last hour;
- signal quality: the share of the last 30 min with a valid fetal signal.

The stacker is a logistic regression on the standardised inputs, one per outcome, with the sign of
each weight fixed beforehand where FIGO 2015 says which way an input points (more decelerations, a
longer reduced variability, a worse class can only raise the risk; accelerations can only lower it).
With 28 acidaemic labours, unconstrained weights took collinear inputs the wrong way round (a
longer reduced variability lowered the risk). Why not gradient boosting: with 28 acidaemic labours
among 415 a boosted model fits noise, and a linear score explains itself exactly: each input's
contribution to the log-odds is ``weight * (value - reference) / scale``, so every alarm can say
which inputs moved this patient's risk, in words, with nothing approximate.

Why it is served in the worker and not inside the Triton ensemble: its inputs are the worker's own
FIGO state (minute records in Redis) and the two models' outputs Triton already returns; sending
them back to Triton would add a round trip and a Python backend to compute 15 multiply-adds. The
weights live in the model version (``compromise.json``), beside the ONNX files they were fitted with.

Pure: arrays and numbers in, numbers and sentences out; no I/O beyond reading the weights file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detectors.ctg import CtgAnalysis
from detectors.findings import Finding, Severity

#: How often the risk is updated per patient (seconds): FIGO's whole-labour state changes once a minute.
RISK_CADENCE_S = 60.0
#: The autoencoder's per-minute scores the risk reads (the last hour).
AUTOENCODER_HISTORY_MIN = 60
#: The LSTM's per-minute risks the risk averages (the same hour of history the autoencoder's input keeps).
LSTM_HISTORY_MIN = 60
#: The risk reads the decelerations of the newest 30-min window (FIGO 2015 judges repetition over 30 min).
RECENT_S = 1800.0
CLASS_RANK = {"normal": 0.0, "suspicious": 1.0, "pathological": 2.0}
#: FIGO 2015: a normal baseline lies within 110-160 bpm; beyond either limit, further is worse.
NORMAL_BASELINE_BPM = (110.0, 160.0)


@dataclass(frozen=True)
class RiskInput:
    """One input of the stacker: its name, how a midwife reads it, how to print it, and the sign its weight
    must have (+1: more is worse, -1: more is reassuring, 0: free), fixed from FIGO 2015 before fitting."""

    name: str
    reads: str
    unit: str = ""
    percent: bool = False
    sign: int = 1


RISK_INPUTS: tuple[RiskInput, ...] = (
    RiskInput("lstm", "the LSTM's acidaemia risk from the last hour", percent=True),
    RiskInput("lstm_hour_mean", "the LSTM's acidaemia risk averaged over the last hour's minutes", percent=True),
    RiskInput("autoencoder", "how unlike normal traces the last hour is (autoencoder, 90th percentile)"),
    RiskInput("figo_class", "the FIGO class (0 normal, 1 suspicious, 2 pathological)"),
    RiskInput("baseline_outside_bpm", "how far the FHR baseline lies outside 110-160", " bpm"),
    RiskInput("variability_bpm", "the variability over the last 10 min", " bpm", sign=0),
    RiskInput("reduced_variability_min", "how long variability has been reduced", " min"),
    RiskInput("late_30min", "late decelerations in the last 30 min"),
    RiskInput("prolonged_30min", "prolonged decelerations in the last 30 min"),
    RiskInput("deceleration_min_30min", "minutes below the baseline in decelerations, last 30 min", " min"),
    RiskInput("deepest_bpm_30min", "the deepest deceleration of the last 30 min", " bpm"),
    RiskInput("repetitive_late_min", "how long late decelerations have been repetitive", " min"),
    RiskInput("accelerations_30min", "accelerations in the last 30 min", sign=-1),
    RiskInput("valid_fraction", "the share of the last 30 min with a fetal signal", percent=True, sign=0),
)
INPUT_NAMES = tuple(i.name for i in RISK_INPUTS)
OUTCOMES = ("ph_below_7_05", "ph_below_7_15")


def risk_inputs(analysis: CtgAnalysis | None, lstm_risk: float | None,
                autoencoder_scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """The stacker's inputs at one minute, in :data:`INPUT_NAMES` order; NaN where one is not available.

    ``analysis`` is the whole-labour analysis (:meth:`detectors.labour.LabourFigo.analysis`);
    ``lstm_risk`` the LSTM's P(pH < 7.05) on the last hour; ``autoencoder_scores`` its per-minute
    scores of the last hour (any number; none gives NaN).
    """
    x = dict.fromkeys(INPUT_NAMES, math.nan)
    if lstm_risk is not None and math.isfinite(lstm_risk):
        x["lstm"] = float(lstm_risk)
    ae = np.asarray(autoencoder_scores, dtype=float)
    ae = ae[np.isfinite(ae)]
    if ae.size:
        x["autoencoder"] = float(np.quantile(ae, 0.9))
    if analysis is not None:
        x["valid_fraction"] = float(analysis.quality.valid_fraction)
        if analysis.classification in CLASS_RANK:
            x["figo_class"] = CLASS_RANK[analysis.classification]
            if analysis.baseline is not None and analysis.baseline.value is not None:
                b = float(analysis.baseline.value)
                x["baseline_outside_bpm"] = max(0.0, NORMAL_BASELINE_BPM[0] - b, b - NORMAL_BASELINE_BPM[1])
            v = analysis.variability
            if v is not None:
                if v.median_bpm is not None:
                    x["variability_bpm"] = float(v.median_bpm)
                x["reduced_variability_min"] = v.reduced_s / 60.0
            end = analysis.t0 + analysis.duration_s
            recent = [d for d in analysis.decelerations if analysis.t0 + d.excursion.end > end - RECENT_S]
            x["late_30min"] = float(sum(d.kind == "late" for d in recent))
            x["prolonged_30min"] = float(sum(d.kind == "prolonged" for d in recent))
            x["deceleration_min_30min"] = sum(d.excursion.duration for d in recent) / 60.0
            x["deepest_bpm_30min"] = max([0.0] + [d.excursion.amplitude for d in recent])
            features = analysis.features
            x["repetitive_late_min"] = 0.0 if features is None else features.repetitive_late_s / 60.0
            x["accelerations_30min"] = float(len(analysis.accelerations))
    return np.array([x[n] for n in INPUT_NAMES], dtype=float)


def model_inputs(raw: np.ndarray) -> np.ndarray:
    """Inputs as the stacker reads them: the LSTM's probability as a log-odds (it is already a risk)."""
    from scipy.special import logit

    out = np.array(raw, dtype=float, copy=True)
    for i in (INPUT_NAMES.index("lstm"), INPUT_NAMES.index("lstm_hour_mean")):
        out[..., i] = logit(np.clip(out[..., i], 1e-4, 1 - 1e-4))  # NaN (not available) stays NaN
    return out


@dataclass
class Contribution:
    spec: RiskInput
    value: float | None
    reference: float  # the input's median over normal-outcome labours, as it reads
    log_odds: float  # what this input adds to the log-odds against a typical normal-outcome labour

    def sentence(self) -> str:
        def show(v: float) -> str:
            if self.spec.percent:
                return f"{v:.0%}"
            return f"{v:.0f}{self.spec.unit}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}{self.spec.unit}"
        value = "not available" if self.value is None else show(self.value)
        return f"{self.spec.reads}: {value} (typical {show(self.reference)})"


@dataclass
class Stacker:
    """A fitted logistic regression per outcome over :data:`INPUT_NAMES`, with what explaining it needs.

    ``center``/``scale``: the standardisation (training means and standard deviations; a missing input
    takes the centre, so it adds nothing). ``reference``: the inputs' medians over normal-outcome
    labours, against which each alarm's reasons are told. ``thresholds``: the alarm's operating point.
    ``normal_share_above``: the share of normal-outcome labours whose risk ever reached each value of
    ``risk_grid`` (out-of-fold), so an alarm can say how unusual its risk is.
    """

    center: np.ndarray
    scale: np.ndarray
    weights: dict[str, np.ndarray]
    intercepts: dict[str, float]
    reference: np.ndarray
    thresholds: dict[str, float] = field(default_factory=dict)
    risk_grid: list[float] = field(default_factory=list)
    normal_share_above: list[float] = field(default_factory=list)
    version: str = ""
    #: The served autoencoder's median score on normal windows: its scores are read over this.
    autoencoder_reference: float = 1.0

    def _z(self, x: np.ndarray) -> np.ndarray:
        m = model_inputs(x)
        return np.where(np.isfinite(m), (m - self.center) / self.scale, 0.0)

    def predict(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Risks per outcome for inputs ``[..., len(INPUT_NAMES)]`` (raw, as :func:`risk_inputs` gives)."""
        z = self._z(raw)
        return {o: 1.0 / (1.0 + np.exp(-(z @ self.weights[o] + self.intercepts[o]))) for o in OUTCOMES}

    def contributions(self, raw: np.ndarray, outcome: str = "ph_below_7_05") -> list[Contribution]:
        """Each input's contribution to this patient's log-odds against the normal-outcome reference, largest first."""
        z = self._z(raw)
        ref = model_inputs(self.reference)
        zr = np.where(np.isfinite(ref), (ref - self.center) / self.scale, 0.0)
        m = model_inputs(raw)
        out = []
        for i, spec in enumerate(RISK_INPUTS):
            value = None if not math.isfinite(float(raw[i])) else float(raw[i])
            out.append(Contribution(spec, value, float(self.reference[i]) if np.isfinite(ref[i]) else 0.0,
                                    float(self.weights[outcome][i] * (z[i] - zr[i]) if math.isfinite(float(m[i])) else 0.0)))
        return sorted(out, key=lambda c: -c.log_odds)

    def share_of_normal_reaching(self, risk: float) -> float | None:
        """The share of normal-outcome labours (out-of-fold) whose pH < 7.05 risk ever reached ``risk``."""
        if not self.risk_grid:
            return None
        i = int(np.searchsorted(np.asarray(self.risk_grid), risk, side="right")) - 1
        return float(self.normal_share_above[max(0, min(i, len(self.normal_share_above) - 1))])

    def explain(self, raw: np.ndarray, top: int = 3) -> list[str]:
        """The inputs that raised this patient's risk most, as sentences (only those that raised it)."""
        return [c.sentence() for c in self.contributions(raw)[:top] if c.log_odds > 0.05]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": list(INPUT_NAMES), "center": self.center.tolist(), "scale": self.scale.tolist(),
                "weights": {o: w.tolist() for o, w in self.weights.items()}, "intercepts": self.intercepts,
                "reference": [None if not np.isfinite(v) else float(v) for v in self.reference],
                "thresholds": self.thresholds, "risk_grid": self.risk_grid,
                "normal_share_above": self.normal_share_above, "version": self.version,
                "autoencoder_reference": self.autoencoder_reference}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stacker:
        if list(d["inputs"]) != list(INPUT_NAMES):
            raise ValueError(f"compromise stacker: inputs {d['inputs']} are not this code's {list(INPUT_NAMES)}")
        return cls(center=np.asarray(d["center"], float), scale=np.asarray(d["scale"], float),
                   weights={o: np.asarray(w, float) for o, w in d["weights"].items()},
                   intercepts={o: float(v) for o, v in d["intercepts"].items()},
                   reference=np.array([np.nan if v is None else v for v in d["reference"]], float),
                   thresholds=dict(d.get("thresholds", {})), risk_grid=list(d.get("risk_grid", [])),
                   normal_share_above=list(d.get("normal_share_above", [])), version=str(d.get("version", "")),
                   autoencoder_reference=float(d.get("autoencoder_reference", 1.0)))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Stacker:
        return cls.from_dict(json.loads(path.read_text()))


def risk_finding(stacker: Stacker, raw: np.ndarray, t: float,
                 risks: dict[str, float] | None = None) -> tuple[dict[str, float], Finding | None]:
    """The risks at ``t`` and, at or above the alarm threshold, the ``compromise_risk`` finding with its reasons.

    Severity: advisory from ``thresholds["t1"]`` (the policy makes it a medium-priority alarm once it
    has held for the row's qualification time), emergency from ``thresholds["t2"]`` (high priority).
    ``risks``: already computed (the evaluation's out-of-fold risks); default: the stacker's.
    """
    risks = {o: float(v) for o, v in (risks or stacker.predict(raw)).items()}
    p = risks["ph_below_7_05"]
    t1, t2 = stacker.thresholds.get("t1"), stacker.thresholds.get("t2")
    if t1 is None or p < t1:
        return risks, None
    high = t2 is not None and p >= t2
    share = stacker.share_of_normal_reaching(p)
    reasons = stacker.explain(raw)
    sentence = (f"Risk of fetal acidaemia (cord pH < 7.05) {p:.0%}, pH < 7.15 {risks['ph_below_7_15']:.0%}"
                + (f"; {share:.0%} of normal-outcome labours ever reach this" if share is not None else "")
                + (". Raised most by: " + "; ".join(reasons) if reasons else "")
                + ". Review the whole trace with the obstetrician.")
    values: dict[str, Any] = {
        "risk_ph_below_7_05": round(p, 4), "risk_ph_below_7_15": round(risks["ph_below_7_15"], 4),
        "threshold": t2 if high else t1, "normal_share_reaching": None if share is None else round(share, 4),
        "reasons": reasons,
        "inputs": {n: (None if not math.isfinite(float(v)) else round(float(v), 4)) for n, v in zip(INPUT_NAMES, raw)},
        "model": f"compromise {stacker.version}".strip(),
    }
    rule = (f"compromise risk (FIGO whole-labour features, ctg_lstm, ctg_autoencoder, signal quality; "
            f"logistic stacker {stacker.version}) >= {t2 if high else t1:.0%}")
    return risks, Finding("compromise_risk", Severity.EMERGENCY if high else Severity.ADVISORY, t - RISK_CADENCE_S, t,
                          rule=rule, sentence=sentence, values=values)
