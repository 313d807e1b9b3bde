"""End to end on the real embedded stack: simulated beds -> broker -> worker(s) -> alerts in
Redis and on the alerts topic. Also: kill -9 and restart, and two workers sharing the partitions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from stream.core.kafka import producer_outbox
from stream.sources.ctg_simulator import Scenario
from stream.sources.publishing import Scheduled, merge, publish_paced, time_base
from stream.sources.vitals_simulator import VitalsScenario
from stream.sources.ward import Bed, bed_schedule
from stream.state.heartbeat import WorkerReport
from stream.state.patient_status import PatientStatus
from tests.faults import alerts_of
from tests.helpers import ctgwatch_process, env_for, read_topic

pytestmark = pytest.mark.integration

DURATION = 1800.0
SPEED = 100.0
#: One alarm per patient and problem (the alarm policy); the 2-min signal loss alarms because the
#: test ward's policy (CTGWATCH_ALARM_POLICY below) qualifies signal loss after 60 s instead of 10 min.
EXPECTED = {
    "prolonged": {"ctg_alarm"},
    "brady": {"ctg_alarm"},
    "loss": {"signal_alarm"},
    "haem": {"maternal_alarm"},
    "normal": set(),
}
TEST_POLICY = json.dumps({"signal_loss": {"qualify_s": 60}})


def beds(tag: str) -> list[Bed]:
    d = DURATION
    normal_vitals = VitalsScenario("normal", d, 300)
    return [
        Bed(0, f"{tag}-prolonged", "bed-01", Scenario("prolonged", duration_s=d, prolonged=((900.0, 1140.0),)), normal_vitals, 11),
        Bed(1, f"{tag}-brady", "bed-02", Scenario("brady", duration_s=d, bradycardia=(600.0, 1800.0)), normal_vitals, 12),
        Bed(2, f"{tag}-loss", "bed-03", Scenario("loss", duration_s=d, signal_loss=((1000.0, 1120.0),)), normal_vitals, 13),
        Bed(3, f"{tag}-haem", "bed-04", Scenario("normal", duration_s=d), VitalsScenario("haemorrhage", d, 300, episode=(600.0, d)), 14),
        Bed(4, f"{tag}-normal", "bed-05", Scenario("normal", duration_s=d), normal_vitals, 15),
    ]


def worker_env(stack, group: str, ward: str) -> dict[str, str]:
    return env_for(stack, CTGWATCH_WORKER_APP_ID=group, CTGWATCH_WARD_ID=ward, CTGWATCH_WORKER_METRICS_PORT="0",
                   CTGWATCH_WORKER_SESSION_TIMEOUT_S="6", CTGWATCH_WORKER_HEARTBEAT_S="1",
                   CTGWATCH_ALARM_POLICY=TEST_POLICY)


async def publish(stack, items: list[Scheduled], shift_s: float = 0.0) -> None:
    async with producer_outbox(stack, "test", max_records=100_000) as outbox:
        shifted = [Scheduled(i.offset_s - shift_s, i.seq, i.topic, i.record) for i in items]
        await publish_paced(outbox, shifted, speed=SPEED)


def schedule(stack, tag: str) -> list[Scheduled]:
    t0 = time_base(DURATION, SPEED)
    return list(merge(bed_schedule(b, stack.topic_names(), t0=t0, packet_s=1.0) for b in beds(tag)))


def kinds_by_bed(alerts: list[dict], tag: str) -> dict[str, set[str]]:
    got = {name: set() for name in EXPECTED}
    for a in alerts:
        got[a["patient_id"].removeprefix(tag + "-")].add(a["kind"])
    return got


def wait_for_expected(redis: Redis, tag: str, timeout_s: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alerts = alerts_of(redis, tag)
        if all(EXPECTED[k] <= v for k, v in kinds_by_bed(alerts, tag).items()):
            break
        time.sleep(1.0)
    time.sleep(4.0)  # and nothing more arrives after the stream is done
    return alerts_of(redis, tag)


def raised_on_topic(stack, tag: str, count: int) -> list[dict]:
    def keep(_k, v):
        m = json.loads(v)
        return m["event"] == "raised" and (m.get("alert") or {}).get("patient_id", "").startswith(tag + "-")

    found = asyncio.run(read_topic(stack.bootstrap_servers, "alerts", keep=keep, timeout_s=30,
                                   until=lambda kept: len({json.loads(v)["audit_id"] for _, v in kept}) >= count))
    unique = {}
    for _, v in found:
        m = json.loads(v)
        unique[m["audit_id"]] = m  # the relay is at-least-once: the same audit entry may come twice
    return list(unique.values())


def assert_exact(alerts: list[dict], tag: str) -> None:
    assert kinds_by_bed(alerts, tag) == EXPECTED
    per_kind = Counter((a["patient_id"], a["kind"]) for a in alerts)
    assert max(per_kind.values()) == 1, f"duplicate alerts: {per_kind}"


def test_simulated_beds_raise_exactly_the_expected_alerts(stack, tmp_path) -> None:
    tag = f"e2e{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(stack.redis_dsn)
    with ctgwatch_process(["worker"], worker_env(stack, f"g-{tag}", f"w-{tag}"), tmp_path / "worker.log",
                          ready="[^Worker]: Ready"):
        asyncio.run(publish(stack, schedule(stack, tag)))
        alerts = wait_for_expected(redis, tag)
    assert_exact(alerts, tag)
    for a in alerts:
        evidence = json.loads(a["evidence"])
        first = evidence["findings"][0]
        assert first["rule"] and first["sentence"] and first["end_s"] >= first["start_s"] and first["values"] is not None
        assert a["status"] == "raised" and a["sentence"] and a["rule"]
    prolonged = next(a for a in alerts if a["patient_id"].endswith("-prolonged"))
    assert "FIGO 2015" in prolonged["rule"] and "nadir" in prolonged["sentence"] and prolonged["severity_name"] == "urgent"
    reasons = {r["kind"] for r in json.loads(prolonged["evidence"])["reasons"]}
    assert "prolonged_deceleration" in reasons
    brady = json.loads(next(a for a in alerts if a["patient_id"].endswith("-brady"))["evidence"])
    seen = {r["kind"] for r in brady["reasons"]} | {r["kind"] for f in brady["findings"] for r in f["values"]["reasons"]}
    # which reasons are current depends on when the analyses fall (the bradycardia's baseline moves down);
    # that one alarm lists every current reason is checked deterministically in tests/unit/test_pipeline.py
    assert seen & {"ctg_pathological", "bradycardia", "prolonged_deceleration"}, seen
    loss = next(a for a in alerts if a["patient_id"].endswith("-loss"))
    assert json.loads(loss["evidence"])["reasons"][0]["kind"] == "signal_loss" and loss["severity_name"] == "advisory"
    models = json.loads(prolonged["evidence"])["models"]
    assert set(models) == {"ctg_lstm", "ctg_autoencoder", "ctg_false_signal", "compromise_risk"}
    assert all(m["status"] == "ok" for m in models.values()), models
    assert 0 <= models["ctg_lstm"]["risk_ph_below_7_05"] <= 1 and models["ctg_false_signal"]["judge"].startswith("ctg_")
    bed_index = {m.decode() for m in redis.smembers("ctgw:open:bed:bed-02")}
    assert {a["id"] for a in alerts if a["bed_id"] == "bed-02"} <= bed_index
    assert {a["id"] for a in alerts} <= {m.decode() for m in redis.zrange(f"ctgw:open:ward:w-{tag}", 0, -1)}
    status = PatientStatus.model_validate({"patient_id": f"{tag}-normal", **{
        k.decode(): json.loads(v) for k, v in redis.hgetall(f"ctgw:patient:{tag}-normal").items()}})
    assert status.classification == "normal" and status.models == "ok"
    assert status.risk_trend and 0 <= status.risk_trend[-1].p <= 1  # the acidaemia-risk course for the bed view
    assert status.analysis_t0 is not None and all(m.end > status.analysis_t0 - 3600 for m in status.events)
    report = WorkerReport.model_validate_json(redis.get("ctgw:worker:heartbeat"))  # the worker's heartbeat
    assert time.time() - report.t < 30 and report.broker_unreachable_since is None  # alive, the broker reached
    on_topic = raised_on_topic(stack, tag, len(alerts))
    assert sorted((m["alert"]["patient_id"], m["alert"]["kind"]) for m in on_topic) == sorted(
        (a["patient_id"], a["kind"]) for a in alerts)


def test_kill_9_and_restart_loses_and_duplicates_nothing(stack, tmp_path) -> None:
    tag = f"rst{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(stack.redis_dsn)
    env = worker_env(stack, f"g-{tag}", f"w-{tag}")
    items = schedule(stack, tag)
    split = 1000.0  # in the middle of the prolonged deceleration (900-1140 s)
    with ctgwatch_process(["worker"], env, tmp_path / "worker1.log", ready="[^Worker]: Ready") as first:
        asyncio.run(publish(stack, [i for i in items if i.offset_s < split]))
        time.sleep(3.0)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    asyncio.run(publish(stack, [i for i in items if i.offset_s >= split], shift_s=split))
    with ctgwatch_process(["worker"], env, tmp_path / "worker2.log", ready="[^Worker]: Ready"):
        alerts = wait_for_expected(redis, tag)
        deadline = time.monotonic() + 60  # the alarms may come before the backlog is through: let it finish
        while time.monotonic() < deadline and any(
                redis.zcard(f"ctgw:win:{b.patient_id}") < int(DURATION) for b in beds(tag)):
            time.sleep(1.0)
    assert_exact(alerts, tag)
    # the window was restored: Redis holds the whole recording of each bed without a hole
    for bed in beds(tag):
        starts = sorted(int(s) for _, s in redis.zrange(f"ctgw:win:{bed.patient_id}", 0, -1, withscores=True))
        assert len(starts) == int(DURATION) and all(b - a == 4 for a, b in zip(starts, starts[1:]))
    on_topic = raised_on_topic(stack, tag, len(alerts))
    assert Counter((m["alert"]["patient_id"], m["alert"]["kind"]) for m in on_topic) == Counter(
        (a["patient_id"], a["kind"]) for a in alerts)


def test_two_workers_share_the_partitions_and_raise_the_same_alerts(stack, tmp_path) -> None:
    tag = f"two{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(stack.redis_dsn)
    env = worker_env(stack, f"g-{tag}", f"w-{tag}")
    with ctgwatch_process(["worker"], env, tmp_path / "w1.log", ready="[^Worker]: Ready"), \
            ctgwatch_process(["worker"], env, tmp_path / "w2.log", ready="[^Worker]: Ready"):
        time.sleep(8.0)  # let the group settle on both members
        asyncio.run(publish(stack, schedule(stack, tag)))
        alerts = wait_for_expected(redis, tag)
    assert_exact(alerts, tag)
    logs = [Path(tmp_path / name).read_text(errors="replace") for name in ("w1.log", "w2.log")]
    assigned = [log.rsplit("Setting newly assigned partitions", 1)[-1] for log in logs]
    assert all("ctg.packets" in a for a in assigned), "each worker should own some ctg.packets partitions"
