"""Alert lifecycle, de-duplication, hysteresis, escalation and audit, on an in-process Redis (fakeredis)."""

from __future__ import annotations

import uuid

import pytest

from detectors.findings import Finding, Severity
from stream.alarms.handling import AlertHandling
from stream.state.alerts import AlertError, AlertStore


def finding(kind: str, start: float, end: float, severity: Severity = Severity.URGENT) -> Finding:
    return Finding(kind, severity, start, end, rule=f"rule for {kind}", sentence=f"{kind} {start}-{end}",
                   values={"x": 1})


@pytest.fixture
async def store(redis):
    now = [1_000.0]
    ward = f"ward-{uuid.uuid4().hex[:6]}"
    s = AlertStore(redis, AlertHandling(ward_id=ward, suppress_after_resolve_s=600), clock=lambda: now[0])
    yield s, now, f"p-{uuid.uuid4().hex[:8]}"


async def test_one_episode_is_one_alert(store) -> None:
    s, now, patient = store
    outcome, aid = await s.apply(patient, "bed-1", finding("prolonged_deceleration", 100, 300))
    assert outcome == "raised"
    # the same evidence again (a replay) and newer evidence of the same episode: no new alert
    assert await s.apply(patient, "bed-1", finding("prolonged_deceleration", 100, 300)) is None
    assert await s.apply(patient, "bed-1", finding("prolonged_deceleration", 100, 360)) == ("updated", aid)
    assert await s.apply(patient, "bed-1", finding("prolonged_deceleration", 100, 420, Severity.EMERGENCY)) == ("severity", aid)
    alerts = await s.open_alerts()
    assert [a.id for a in alerts] == [aid]
    alert = alerts[0]
    assert alert.severity_name == "emergency" and alert.last_end_s == 420
    assert len(alert.evidence["findings"]) == 3 and alert.evidence["findings"][-1]["end_s"] == 420
    assert [e.event for e in await s.audit_trail(aid)] == ["raised", "severity_raised"]


async def test_lifecycle_with_audit_and_bed_index(store) -> None:
    s, now, patient = store
    _, aid = await s.apply(patient, "bed-7", finding("bradycardia", 0, 700))
    assert [a.id for a in await s.open_alerts(bed_id="bed-7")] == [aid]
    with pytest.raises(AlertError):
        await s.resolve(aid, "nurse.ann", "")
    now[0] += 10
    assert (await s.acknowledge(aid, "nurse.ann", "at the bedside")).status == "acknowledged"
    with pytest.raises(AlertError):
        await s.acknowledge(aid, "nurse.ann")
    now[0] += 10
    assert (await s.escalate(aid, "nurse.ann", "needs obstetrician")).status == "escalated"
    now[0] += 10
    done = await s.resolve(aid, "dr.bob", "delivered")
    assert done.status == "resolved" and done.resolved_by == "dr.bob"
    assert await s.open_alerts(bed_id="bed-7") == [] and await s.open_alerts() == []
    trail = await s.audit_trail(aid)
    assert [(e.event, e.actor) for e in trail] == [
        ("raised", "ctgwatch"), ("acknowledged", "nurse.ann"), ("escalated", "nurse.ann"), ("resolved", "dr.bob")]
    assert trail[-1].detail["reason"] == "delivered"
    with pytest.raises(AlertError):
        await s.acknowledge("no-such-alert", "x")


async def test_resolved_episode_is_not_raised_again_and_suppression(store) -> None:
    s, now, patient = store
    _, first = await s.apply(patient, "bed-2", finding("late_deceleration", 0, 100))
    await s.resolve(first, "nurse", "reviewed")
    # re-analysis of the same window finds the same old event: nothing
    assert await s.apply(patient, "bed-2", finding("late_deceleration", 0, 100)) is None
    # a new event inside the suppression time: nothing
    now[0] += 60
    assert await s.apply(patient, "bed-2", finding("late_deceleration", 200, 260)) is None
    # after it: a new alert
    now[0] += 600
    outcome, second = await s.apply(patient, "bed-2", finding("late_deceleration", 900, 960))
    assert outcome == "raised" and second != first


async def test_escalation_of_unacknowledged_alerts(store) -> None:
    s, now, patient = store
    _, urgent = await s.apply(patient, "bed-3", finding("shock_index", 0, 0, Severity.URGENT))
    _, advisory = await s.apply(patient, "bed-3", finding("signal_loss", 0, 20, Severity.ADVISORY))
    _, acked = await s.apply(patient, "bed-3", finding("bradycardia", 0, 700, Severity.URGENT))
    await s.acknowledge(acked, "nurse")
    now[0] += 299
    assert urgent not in await s.run_escalations()
    now[0] += 2
    escalated = await s.run_escalations()
    assert urgent in escalated and advisory not in escalated and acked not in escalated
    alert = await s.get(urgent)
    assert alert.status == "escalated" and alert.escalations == 1
    now[0] += 301  # still nobody: re-notified
    assert urgent in await s.run_escalations()
    assert (await s.get(urgent)).escalations == 2
    await s.acknowledge(urgent, "nurse")
    now[0] += 1000
    assert urgent not in await s.run_escalations()


async def test_a_fresh_ward_clears_clinical_state_and_keeps_users(redis) -> None:
    from stream.state.ward_reset import clear_clinical_state

    s = AlertStore(redis, AlertHandling(ward_id="w"))
    await s.apply("p-1", "bed-1", finding("bradycardia", 0, 700))
    await redis.hset("ctgw:user:ann", mapping={"role": "nurse"})
    await redis.xadd("ctgw:audit:admin", {"event": "user_added"})
    assert await clear_clinical_state(redis) > 0
    assert await s.open_alerts() == []
    assert sorted(k.decode() for k in await redis.keys("*")) == ["ctgw:audit:admin", "ctgw:user:ann"]


async def test_a_condition_still_on_after_a_resolution_alarms_again_after_the_quiet_time(store) -> None:
    s, now, patient = store
    _, first = await s.apply(patient, "bed-1", finding("ctg_alarm", 0, 600))
    await s.resolve(first, "olga", "reviewed, plan made")
    now[0] += 100
    assert await s.apply(patient, "bed-1", finding("ctg_alarm", 0, 700)) is None  # within the quiet time
    now[0] += 600  # 700 s after the resolution (quiet time 600 s)
    outcome, second = await s.apply(patient, "bed-1", finding("ctg_alarm", 0, 1400))
    assert outcome == "raised" and second != first


async def test_a_moved_patients_open_alarms_go_with_her_to_the_new_bed(store) -> None:
    """Alarms always carry the patient's current bed (one stayed labelled bed-41 after its patient moved)."""
    s, _now, patient = store
    _, open_id = await s.apply(patient, "bed-41", finding("ctg_alarm", 100, 300))
    _, done_id = await s.apply(patient, "bed-41", finding("signal_alarm", 100, 300))
    await s.resolve(done_id, "ann", "transducer repositioned")
    assert await s.move_patient(patient, "bed-03") == [open_id]
    assert (await s.get(open_id)).bed_id == "bed-03"
    assert [a.id for a in await s.open_alerts(bed_id="bed-03")] == [open_id]
    assert await s.open_alerts(bed_id="bed-41") == []
    assert (await s.get(done_id)).bed_id == "bed-41"  # a resolved alarm keeps where it was
    moved = [e for e in await s.audit_trail(open_id) if e.event == "moved"]
    assert moved and moved[0].detail == {"from": "bed-41", "to": "bed-03"}
    assert await s.move_patient(patient, "bed-03") == []  # already there: nothing to do


async def test_the_newest_alerts_trail_is_whole_in_a_busy_audit_stream(store, redis) -> None:
    """The trail read the oldest 1000 events of the ward's stream and filtered them: with more, the newest
    alert's history was missing. Each alert keeps its own trail; the ward's stream reads newest first."""
    from stream.state.alerts import AUDIT

    s, now, patient = store
    for i in range(5000):
        await redis.xadd(AUDIT, {"alert_id": f"old-{i}", "event": "raised", "actor": "ctgwatch", "at": 1.0,
                                 "detail": "{}"})
    _, aid = await s.apply(patient, "bed-1", finding("ctg_alarm", 100, 300))
    await s.acknowledge(aid, "ann")
    await s.escalate(aid, "ann", "no change")
    await s.resolve(aid, "olga", "delivered")
    assert [e.event for e in await s.audit_trail(aid)] == ["raised", "acknowledged", "escalated", "resolved"]
    newest = await s.audit_trail(count=4)
    assert [e.alert_id for e in newest] == [aid] * 4 and newest[-1].event == "resolved"
