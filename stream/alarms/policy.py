"""Which finding is an annotation, a notice or an alarm: the ward's alarm policy as one table of data.

Alarm design follows IEC 60601-1-8's ideas: *alarms* need a person now and
carry a priority (high, medium, low); *notices* are information signals that
need no response and clear themselves; *annotations* are drawn on the trace
and listed, never signalled. Physiological conditions (the fetus, the mother)
are kept apart from technical ones (the signal).

Every row says why it sits where it sits. A condition must hold for
``qualify_s`` before it alarms (AlertWatch:OB pages only on conditions that
persist 10 min, BMC Anesthesiol 2018) and be absent for ``clear_s`` before it
ends; conditions that cannot wait (a prolonged deceleration or bradycardia in
progress, a MEOWS red trigger) qualify at once. The qualification time of the
pathological CTG alarm was chosen by measurement on CTU-UHB (``ctgwatch
evaluate burden``, docs/EVALUATION.md), not by taste.

The stream (:mod:`stream.worker.pipeline`) and the evaluation
(:mod:`stream.evaluation.burden`) apply the same :class:`AlarmPolicy`, so what
the evaluation measures is what the ward gets. A ward changes a row with
``CTGWATCH_ALARM_POLICY`` (JSON: ``{"ctg_pathological": {"qualify_s": 300}}``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from detectors.findings import Severity


class Tier(StrEnum):
    ANNOTATION = "annotation"
    NOTICE = "notice"
    ALARM = "alarm"


class Priority(IntEnum):
    """IEC 60601-1-8 alarm priorities (INFO: an information signal, no alarm)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def of_severity_name(cls, name: str) -> Priority:
        """The alarm priority an alert record's severity stands for (the inverse of :attr:`severity`)."""
        return next((p for p in cls if str(p.severity) == name and p is not Priority.INFO), Priority.LOW)

    @property
    def severity(self) -> Severity:
        """The alert store's severity: it escalates medium (urgent) and high (emergency) alarms."""
        return {Priority.INFO: Severity.INFO, Priority.LOW: Severity.ADVISORY,
                Priority.MEDIUM: Severity.URGENT, Priority.HIGH: Severity.EMERGENCY}[self]


class Problem(StrEnum):
    """One alarm per patient and problem; its evidence lists every reason."""

    CTG = "ctg"  # physiological: the fetus, as the CTG shows it
    MATERNAL = "maternal"  # physiological: the mother
    SIGNAL = "signal"  # technical: the fetal signal itself

    @property
    def alarm_kind(self) -> str:
        return f"{self.value}_alarm"

    @property
    def condition(self) -> str:
        return "technical" if self is Problem.SIGNAL else "physiological"


class Source(StrEnum):
    """Where findings come from: the per-packet rules, the FIGO analysis, each vitals observation, the models."""

    FAST = "fast"
    FIGO = "figo"
    VITALS = "vitals"
    MODELS = "models"


@dataclass(frozen=True)
class KindRule:
    """How one finding kind is signalled.

    A finding is an alarm when its severity reaches ``alarm_at``, else a notice
    when it reaches ``notice_at``, else an annotation. It counts as present
    while it ended no more than ``holds_s`` before the observation (a finished
    event is history, drawn on the trace; a state like "CTG pathological" ends
    at the observation).
    """

    kind: str
    problem: Problem
    why: str
    sources: tuple[str, ...] = (Source.FIGO,)
    notice_at: Severity | None = None
    alarm_at: Severity | None = None
    priority: Priority = Priority.MEDIUM
    high_at: Severity | None = None  # a finding this severe raises the priority to high
    qualify_s: float = 0.0
    clear_s: float = 300.0
    holds_s: float = 30.0

    def priority_of(self, severity: Severity) -> Priority:
        return Priority.HIGH if self.high_at is not None and severity >= self.high_at else self.priority

    def tier(self, severity: Severity) -> Tier:
        if self.alarm_at is not None and severity >= self.alarm_at:
            return Tier.ALARM
        if self.notice_at is not None and severity >= self.notice_at:
            return Tier.NOTICE
        return Tier.ANNOTATION


A, U, E = Severity.ADVISORY, Severity.URGENT, Severity.EMERGENCY
#: How long the compromise risk must stay above its first threshold (stream/evaluation/risk_alarm.py chose it).
COMPROMISE_QUALIFY_S = 600.0
_I = Severity.INFO
#: The policy table. ``why`` is shown in the README and in each alarm's evidence.
DEFAULT_RULES: tuple[KindRule, ...] = (
    # -- CTG: what the fetus shows ---------------------------------------------------------
    KindRule("ctg_pathological", Problem.CTG, alarm_at=A, priority=Priority.MEDIUM, qualify_s=600.0, clear_s=300.0,
             why="FIGO 2015: pathological CTG needs action now; held 10 min first "
                 "(AlertWatch:OB; 0 min adds 4% of normal labours on CTU-UHB)"),
    KindRule("prolonged_deceleration", Problem.CTG, sources=(Source.FAST, Source.FIGO), alarm_at=A, priority=Priority.MEDIUM,
             high_at=E, why="FIGO 2015: a prolonged deceleration (> 3 min) in progress cannot wait; > 5 min below 80 bpm "
                            "suggests acute hypoxia (high priority)"),
    KindRule("bradycardia", Problem.CTG, sources=(Source.FAST, Source.FIGO), notice_at=A, alarm_at=U, priority=Priority.HIGH,
             why="FIGO 2015: FHR < 100 bpm (or < 110 for > 10 min while in progress) cannot wait; 100-110 is a suspicious feature"),
    KindRule("sinusoidal", Problem.CTG, alarm_at=A, priority=Priority.MEDIUM,
             why="FIGO 2015: a sinusoidal pattern (fetal anaemia, hypoxia) needs review once it lasts 10 min; pathological > 30 min"),
    KindRule("tachycardia", Problem.CTG, alarm_at=A, priority=Priority.MEDIUM, qualify_s=300.0,
             why="FIGO 2015: baseline > 160 bpm for > 10 min (maternal pyrexia, infection, hypoxia) needs a person; 5 more min to qualify"),
    KindRule("ctg_suspicious", Problem.CTG, notice_at=A,
             why="FIGO 2015: suspicious CTG calls for correcting reversible causes and close monitoring, not an alarm"),
    KindRule("repetitive_decelerations", Problem.CTG, notice_at=A,
             why="FIGO 2015: suspicious feature; repetitive late decelerations > 30 min make the CTG pathological (alarmed there)"),
    KindRule("reduced_variability", Problem.CTG, notice_at=A,
             why="FIGO 2015: reduced variability > 50 min makes the CTG pathological (alarmed there)"),
    KindRule("increased_variability", Problem.CTG, notice_at=A,
             why="FIGO 2015: saltatory variability > 30 min makes the CTG pathological (alarmed there)"),
    KindRule("reduced_variability_in_decelerations", Problem.CTG, notice_at=A,
             why="FIGO 2015: > 3 min of reduced variability inside decelerations makes the CTG pathological (alarmed there)"),
    KindRule("tachysystole", Problem.CTG, notice_at=A, clear_s=600.0,
             why="FIGO 2015: > 5 contractions in 10 min calls for reducing uterotonics; shown, not alarmed"),
    KindRule("late_deceleration", Problem.CTG, notice_at=A, holds_s=600.0,
             why="FIGO 2015: one late deceleration is a warning; repetitive ones make the CTG pathological"),
    KindRule("variable_deceleration", Problem.CTG, notice_at=A, holds_s=600.0,
             why="a variable deceleration with atypical features is shown for 10 min; a typical one is an annotation"),
    KindRule("unclassified_deceleration", Problem.CTG,
             why="a deceleration not related to a contraction is drawn on the trace"),
    KindRule("early_deceleration", Problem.CTG, why="FIGO 2015: early decelerations are benign; drawn on the trace"),
    KindRule("acceleration", Problem.CTG, why="FIGO 2015: accelerations are reassuring; drawn on the trace"),
    KindRule("model_anomaly", Problem.CTG, sources=(Source.MODELS,), notice_at=A, clear_s=120.0,
             why="the autoencoder alone is evidence beside the rules, never an alarm (docs/EVALUATION.md)"),
    KindRule("compromise_risk", Problem.CTG, sources=(Source.MODELS,), alarm_at=A, priority=Priority.MEDIUM, high_at=E,
             qualify_s=COMPROMISE_QUALIFY_S, clear_s=300.0, holds_s=90.0,
             why="the compromise risk (FIGO 2015 whole-labour features, the acidaemia LSTM, the autoencoder and signal "
                 "quality, stacked and calibrated on CTU-UHB): P(pH < 7.05) above its first threshold for the "
                 "qualification time is a medium alarm, above its second a high one; thresholds chosen on the "
                 "tuning half only (docs/EVALUATION.md)"),
    # -- the fetal signal: technical conditions --------------------------------------------
    KindRule("signal_loss", Problem.SIGNAL, sources=(Source.FAST, Source.FIGO), alarm_at=A, priority=Priority.LOW,
             qualify_s=1200.0, clear_s=60.0,
             why="technical: no fetal signal for 20 min while monitoring (reposition the transducer); shorter losses are "
                 "a notice (10 min alarmed 48% of normal-outcome labours on CTU-UHB, docs/EVALUATION.md)"),
    KindRule("maternal_hr_capture", Problem.SIGNAL, alarm_at=A, priority=Priority.MEDIUM, qualify_s=60.0,
             why="technical, FIGO 2015: the FHR trace may be the mother's heart rate; confirm the fetal heart"),
    KindRule("false_signal", Problem.SIGNAL, alarm_at=A, priority=Priority.MEDIUM, qualify_s=60.0, holds_s=150.0,
             why="technical: the false-signal model judges the FHR trace not fetal (the mother's rate, doubled or "
                 "halved); confirm the fetal heart. The rules judge instead while the model is unavailable. Its "
                 "verdict reaches the FIGO measurement of the next minute, up to 2 min after the seconds it judged"),
    KindRule("halving_doubling", Problem.SIGNAL, notice_at=A, clear_s=120.0,
             why="technical: a counting artefact, left out of the analysis and shown"),
    KindRule("insufficient_signal", Problem.SIGNAL, notice_at=A, clear_s=120.0,
             why="technical: too little fetal signal to interpret; shown on the wall panel"),
    # -- the mother ------------------------------------------------------------------------
    KindRule("meows_trigger", Problem.MATERNAL, sources=(Source.VITALS,), alarm_at=A, priority=Priority.HIGH, clear_s=0.0,
             why="MEOWS: one red or two yellow triggers call for urgent medical review"),
    KindRule("meows_yellow", Problem.MATERNAL, sources=(Source.VITALS,), notice_at=A, clear_s=0.0,
             why="MEOWS: one yellow trigger means closer observation, not an alarm"),
    KindRule("shock_index", Problem.MATERNAL, sources=(Source.VITALS,), alarm_at=A, priority=Priority.MEDIUM, clear_s=0.0,
             why="obstetric shock index >= 0.9 (Nathan et al., BJOG 2015): look for haemorrhage"),
    KindRule("maternal_deterioration_trend", Problem.MATERNAL, sources=(Source.VITALS,), alarm_at=A, priority=Priority.MEDIUM,
             clear_s=0.0, why="HR rising while blood pressure falls: early sign of haemorrhage or sepsis"),
)


class AlarmPolicy:
    """The rules by kind, with a ward's overrides applied; unknown kinds are notices of the CTG problem."""

    def __init__(self, rules: tuple[KindRule, ...] = DEFAULT_RULES,
                 overrides: dict[str, dict[str, Any]] | None = None) -> None:
        table = {r.kind: r for r in rules}
        for kind, changes in (overrides or {}).items():
            if kind not in table:
                raise ValueError(f"alarm policy: no rule for {kind!r}; kinds are {', '.join(sorted(table))}")
            unknown = set(changes) - {f.name for f in dataclasses.fields(KindRule)} - {"kind", "problem", "why"}
            if unknown or {"kind", "problem", "why"} & set(changes):
                raise ValueError(f"alarm policy: {kind}: cannot set {', '.join(sorted(set(changes)))}")
            table[kind] = dataclasses.replace(table[kind], **_coerce(changes))
        self.rules = table

    def rule(self, kind: str) -> KindRule:
        return self.rules.get(kind) or KindRule(kind, Problem.CTG, notice_at=A, why="not in the policy table: shown")


def _coerce(changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    for key in ("notice_at", "alarm_at", "high_at"):
        if isinstance(out.get(key), str):
            out[key] = Severity[out[key].upper()]
    if isinstance(out.get("priority"), str):
        out["priority"] = Priority[out["priority"].upper()]
    if "sources" in out:
        out["sources"] = tuple(out["sources"])
    return out
