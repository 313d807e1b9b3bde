"""From findings to what the ward is shown: persistence, hysteresis and one alarm per problem.

:class:`PatientAlarms` is a pure state machine of one patient, fed the findings
of each source as they come (the per-packet rules, the FIGO analysis, a vitals
observation, the models) on the patient's own recording clock. It keeps every
condition with the time it was first seen, and answers with the notices to show
and, per problem (CTG, mother, signal), the one alarm whose evidence lists every
qualified reason. The stream and ``ctgwatch evaluate burden`` both run it, so
the evaluation measures exactly what the ward gets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from detectors.findings import Finding
from stream.alarms.policy import AlarmPolicy, Priority, Problem, Tier


@dataclass
class Condition:
    """A finding kind present now or lately: when it began, when it was last seen, its latest finding."""

    finding: Finding
    tier: Tier
    since: float
    last_seen: float

    @property
    def kind(self) -> str:
        return self.finding.kind


@dataclass(frozen=True)
class Notice:
    """An information signal: shown on the tile and the bed view, no acknowledgement, clears itself."""

    kind: str
    problem: str
    sentence: str
    since: float
    qualifying: bool  # an alarm condition not yet held for its qualification time


@dataclass(frozen=True)
class ProblemAlarm:
    """The one alarm of a problem: its priority is the highest of its reasons'."""

    problem: Problem
    priority: Priority
    since: float
    reasons: tuple[Finding, ...]

    def as_finding(self, now: float, why: dict[str, str]) -> Finding:
        """The alarm as one finding for the alert store: the top reason's words, every reason in the values."""
        top = max(self.reasons, key=lambda f: (f.severity, f.end_s))
        more = len(self.reasons) - 1
        return Finding(
            self.problem.alarm_kind, self.priority.severity, self.since, now,
            rule=top.rule, sentence=top.sentence + (f" (+{more} more reason{'s' * (more > 1)})" if more else ""),
            values={"priority": str(self.priority), "condition": self.problem.condition,
                    "reasons": [{**f.to_dict(), "policy": why.get(f.kind, "")} for f in self.reasons]},
        )


@dataclass(frozen=True)
class AlarmState:
    notices: tuple[Notice, ...]
    alarms: dict[Problem, ProblemAlarm]


@dataclass
class PatientAlarms:
    """The alarm state machine of one patient (see the module docstring)."""

    policy: AlarmPolicy
    conditions: dict[str, Condition] = field(default_factory=dict)

    def observe(self, source: str, t: float, findings: Iterable[Finding]) -> AlarmState:
        """One observation of ``source`` at recording time ``t``: what it reports now, the rest of its kinds absent."""
        current: dict[str, Finding] = {}
        for f in findings:
            rule = self.policy.rule(f.kind)
            if source not in rule.sources or t - f.end_s > rule.holds_s:
                continue
            if rule.tier(f.severity) is Tier.ANNOTATION:
                continue
            best = current.get(f.kind)
            if best is None or (f.severity, f.end_s) > (best.severity, best.end_s):
                current[f.kind] = f
        for kind, f in current.items():
            tier = self.policy.rule(kind).tier(f.severity)
            cond = self.conditions.get(kind)
            if cond is None:
                self.conditions[kind] = Condition(f, tier, since=t, last_seen=t)
            else:
                cond.finding, cond.last_seen = f, t
                cond.tier = max(cond.tier, tier, key=_TIER_ORDER.index)
        for kind, cond in list(self.conditions.items()):
            rule = self.policy.rule(kind)
            if kind not in current and source in rule.sources and t - cond.last_seen >= rule.clear_s:
                del self.conditions[kind]
        return self.state(t)

    def state(self, t: float) -> AlarmState:
        notices: list[Notice] = []
        reasons: dict[Problem, list[Condition]] = {}
        for cond in self.conditions.values():
            rule = self.policy.rule(cond.kind)
            qualified = t - cond.since >= rule.qualify_s
            if cond.tier is Tier.ALARM and qualified:
                reasons.setdefault(rule.problem, []).append(cond)
            else:
                notices.append(Notice(cond.kind, str(rule.problem), cond.finding.sentence, cond.since,
                                      qualifying=cond.tier is Tier.ALARM))
        alarms = {}
        for problem, conds in reasons.items():
            alarms[problem] = ProblemAlarm(
                problem, max(self.policy.rule(c.kind).priority_of(c.finding.severity) for c in conds),
                since=min(c.since for c in conds), reasons=tuple(c.finding for c in conds))
        return AlarmState(tuple(sorted(notices, key=lambda n: n.since)), alarms)


_TIER_ORDER = [Tier.ANNOTATION, Tier.NOTICE, Tier.ALARM]
