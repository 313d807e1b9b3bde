"""The alarm policy table and the per-patient state machine: tiers, qualification, hysteresis,
consolidation into one alarm per problem, priority rise."""

from __future__ import annotations

import pytest

from detectors.findings import Finding, Severity
from stream.alarms.policy import DEFAULT_RULES, AlarmPolicy, Priority, Problem, Source, Tier
from stream.alarms.tracker import PatientAlarms


def f(kind: str, start: float, end: float, severity: Severity = Severity.URGENT, **values) -> Finding:
    return Finding(kind, severity, start, end, rule=f"rule {kind}", sentence=f"{kind} sentence", values=values)


def test_every_row_says_why_and_its_tier_is_consistent() -> None:
    kinds = [r.kind for r in DEFAULT_RULES]
    assert len(kinds) == len(set(kinds))
    for r in DEFAULT_RULES:
        assert len(r.why) > 20, r.kind
        assert r.qualify_s >= 0 and r.clear_s >= 0
        if r.alarm_at is None:
            assert r.tier(Severity.EMERGENCY) is not Tier.ALARM
    policy = AlarmPolicy()
    assert policy.rule("acceleration").tier(Severity.INFO) is Tier.ANNOTATION
    assert policy.rule("ctg_suspicious").tier(Severity.ADVISORY) is Tier.NOTICE
    assert policy.rule("ctg_pathological").tier(Severity.URGENT) is Tier.ALARM
    assert policy.rule("bradycardia").tier(Severity.ADVISORY) is Tier.NOTICE  # 100-110 bpm: suspicious only
    assert policy.rule("bradycardia").tier(Severity.URGENT) is Tier.ALARM


def test_overrides_change_a_row_and_refuse_what_does_not_exist() -> None:
    policy = AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 60, "priority": "high"}})
    assert policy.rule("ctg_pathological").qualify_s == 60 and policy.rule("ctg_pathological").priority is Priority.HIGH
    with pytest.raises(ValueError, match="no rule"):
        AlarmPolicy(overrides={"nonsense": {"qualify_s": 1}})
    with pytest.raises(ValueError, match="cannot set"):
        AlarmPolicy(overrides={"ctg_pathological": {"colour": "red"}})


def test_an_alarm_condition_is_a_notice_until_it_has_held_for_its_qualification_time() -> None:
    tracker = PatientAlarms(AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 600}}))
    for t in range(0, 600, 15):
        state = tracker.observe(Source.FIGO, t, [f("ctg_pathological", t - 600, t)])
        assert state.alarms == {}
        assert [n.kind for n in state.notices] == ["ctg_pathological"] and state.notices[0].qualifying
    state = tracker.observe(Source.FIGO, 600, [f("ctg_pathological", 0, 600)])
    assert list(state.alarms) == [Problem.CTG] and state.notices == ()


def test_a_condition_that_cannot_wait_alarms_at_once() -> None:
    tracker = PatientAlarms(AlarmPolicy())
    state = tracker.observe(Source.FAST, 100.0, [f("prolonged_deceleration", 0, 100, Severity.URGENT)])
    assert state.alarms[Problem.CTG].priority is Priority.MEDIUM  # > 3 min: needs a person now
    state = tracker.observe(Source.FAST, 101.0, [f("prolonged_deceleration", 0, 101, Severity.EMERGENCY)])
    assert state.alarms[Problem.CTG].priority is Priority.HIGH  # > 5 min below 80 bpm: acute hypoxia
    state = tracker.observe(Source.VITALS, 100.0, [f("meows_trigger", 100, 100)])
    assert state.alarms[Problem.MATERNAL].priority is Priority.HIGH


def test_hysteresis_a_condition_ends_only_after_its_clear_time() -> None:
    tracker = PatientAlarms(AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 0, "clear_s": 300}}))
    tracker.observe(Source.FIGO, 0, [f("ctg_pathological", -600, 0)])
    for t in (15, 150, 285):  # absent, but not for 5 min yet: the alarm holds
        assert Problem.CTG in tracker.observe(Source.FIGO, t, []).alarms
    # back before the clear time: the same condition, qualified since 0
    state = tracker.observe(Source.FIGO, 290, [f("ctg_pathological", -310, 290)])
    assert state.alarms[Problem.CTG].since == 0
    assert Problem.CTG in tracker.observe(Source.FIGO, 580, []).alarms
    assert tracker.observe(Source.FIGO, 600, []).alarms == {}


def test_other_sources_neither_hold_nor_end_a_condition() -> None:
    tracker = PatientAlarms(AlarmPolicy())
    tracker.observe(Source.VITALS, 0, [f("meows_trigger", 0, 0)])
    for t in range(1, 1000, 7):  # CTG packets and analyses in between do not clear the mother's alarm
        tracker.observe(Source.FAST, t, [])
        tracker.observe(Source.FIGO, t, [])
    assert Problem.MATERNAL in tracker.state(1000).alarms
    assert tracker.observe(Source.VITALS, 1200, []).alarms == {}  # the next observation without a trigger


def test_one_alarm_per_problem_lists_every_reason_and_its_priority_rises() -> None:
    tracker = PatientAlarms(AlarmPolicy(overrides={"ctg_pathological": {"qualify_s": 0}}))
    state = tracker.observe(Source.FIGO, 1000, [
        f("ctg_pathological", 0, 1000, Severity.URGENT),
        f("repetitive_decelerations", 0, 1000, Severity.URGENT),  # a notice on its own
        f("late_deceleration", 900, 960, Severity.ADVISORY),  # a notice for 10 min after it ends
        f("acceleration", 100, 130, Severity.INFO),  # an annotation: never signalled
    ])
    alarm = state.alarms[Problem.CTG]
    assert alarm.priority is Priority.MEDIUM and [r.kind for r in alarm.reasons] == ["ctg_pathological"]
    assert sorted(n.kind for n in state.notices) == ["late_deceleration", "repetitive_decelerations"]
    state = tracker.observe(Source.FAST, 1001, [f("prolonged_deceleration", 700, 1001, Severity.EMERGENCY)])
    alarm = state.alarms[Problem.CTG]
    assert alarm.priority is Priority.HIGH and {r.kind for r in alarm.reasons} == {"ctg_pathological", "prolonged_deceleration"}
    finding = alarm.as_finding(1001, {"prolonged_deceleration": "why"})
    assert finding.kind == "ctg_alarm" and finding.severity is Severity.EMERGENCY and finding.start_s == 1000
    assert {r["kind"] for r in finding.values["reasons"]} == {"ctg_pathological", "prolonged_deceleration"}
    assert finding.sentence.startswith("prolonged_deceleration sentence") and "+1 more reason" in finding.sentence


def test_finished_events_are_history_not_current_conditions() -> None:
    tracker = PatientAlarms(AlarmPolicy())
    # a prolonged deceleration that ended 5 min ago, still in the 30-min analysis: not an alarm now
    state = tracker.observe(Source.FIGO, 1000, [f("prolonged_deceleration", 500, 700, complete=True)])
    assert state.alarms == {} and state.notices == ()


def test_technical_and_physiological_problems_stay_apart() -> None:
    tracker = PatientAlarms(AlarmPolicy(overrides={"signal_loss": {"qualify_s": 30}}))
    for t in range(0, 61):
        state = tracker.observe(Source.FAST, t, [f("signal_loss", 0, t, Severity.ADVISORY)] if t >= 15 else [])
    assert list(state.alarms) == [Problem.SIGNAL]
    assert state.alarms[Problem.SIGNAL].priority is Priority.LOW
    assert Problem.SIGNAL.condition == "technical" and Problem.CTG.condition == "physiological"


def test_the_clinical_reference_lists_every_row_of_the_policy_table() -> None:
    from pathlib import Path

    reference = (Path(__file__).parents[2] / "docs" / "CLINICAL.md").read_text()
    for r in DEFAULT_RULES:
        assert f"| `{r.kind}` | {r.problem} |" in reference, r.kind


def test_an_alert_records_severity_reads_back_as_its_priority() -> None:
    for p in (Priority.LOW, Priority.MEDIUM, Priority.HIGH):
        assert Priority.of_severity_name(str(p.severity)) is p
    assert Priority.of_severity_name("unknown") is Priority.LOW
