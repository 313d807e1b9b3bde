"""End to end on the real embedded stack: a bed with reduced variability and a bed with a sinusoidal
pattern are classed pathological once the pattern passes FIGO 2015's limit (> 50 min, > 30 min), raise
their CTG alarm, and the status the bed page's "why this class" reads names the rule."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from redis import Redis

from stream.core.kafka import producer_outbox
from stream.sources.ctg_simulator import Scenario
from stream.sources.publishing import merge, publish_paced, time_base
from stream.sources.vitals_simulator import VitalsScenario
from stream.sources.ward import Bed, bed_schedule
from stream.state.patient_status import PatientStatus
from tests.faults import alerts_of
from tests.helpers import ctgwatch_process, env_for

pytestmark = pytest.mark.integration

DURATION = 4500.0  # 75 min: 65 min of each pattern, past its limit and the alarm's 10-min qualification
SPEED = 120.0
ONSET = 600.0
RULES = {"reduced": "reduced variability for", "sinus": "sinusoidal pattern for"}


def status_of(redis: Redis, patient_id: str) -> PatientStatus:
    raw = redis.hgetall(f"ctgw:patient:{patient_id}")
    return PatientStatus.model_validate({"patient_id": patient_id, **{k.decode(): json.loads(v) for k, v in raw.items()}})


def test_duration_rules_make_the_class_pathological_and_alarm_on_the_real_stack(stack, tmp_path) -> None:
    tag = f"lab{uuid.uuid4().hex[:6]}"
    vitals = VitalsScenario("normal", DURATION, 300)
    beds = [
        Bed(0, f"{tag}-reduced", "bed-01", Scenario("reduced", duration_s=DURATION,
                                                    reduced_variability=(ONSET, DURATION)), vitals, 21),
        Bed(1, f"{tag}-sinus", "bed-02", Scenario("sinus", duration_s=DURATION, sinusoidal=(ONSET, DURATION),
                                                  accelerations_per_10min=0.5), vitals, 22),
    ]
    t0 = time_base(DURATION, SPEED)
    items = list(merge(bed_schedule(b, stack.topic_names(), t0=t0, packet_s=1.0) for b in beds))

    async def publish() -> None:
        async with producer_outbox(stack, "test", max_records=100_000) as outbox:
            await publish_paced(outbox, items, speed=SPEED)

    redis = Redis.from_url(stack.redis_dsn)
    env = env_for(stack, CTGWATCH_WORKER_APP_ID=f"g-{tag}", CTGWATCH_WARD_ID=f"w-{tag}",
                  CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_MODELS_ENABLED="false")
    with ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"):
        asyncio.run(publish())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [status_of(redis, b.patient_id) for b in beds]
            if all(s.analysed_at and s.t_end and s.t_end >= t0 + DURATION - 20 for s in done):
                break
            time.sleep(1.0)
        time.sleep(3.0)
    for bed in beds:
        name = bed.patient_id.removeprefix(tag + "-")
        status = status_of(redis, bed.patient_id)
        assert status.classification == "pathological", (name, status.reasons)
        assert any(r.startswith(RULES[name]) for r in status.reasons), status.reasons  # "why this class"
        alarm = [a for a in alerts_of(redis, tag) if a["patient_id"] == bed.patient_id and a["kind"] == "ctg_alarm"]
        assert len(alarm) == 1, (name, [(a["kind"], a["sentence"]) for a in alerts_of(redis, tag)], status.reasons)
        reasons = json.loads(alarm[0]["evidence"])["reasons"]
        pathological = [r for r in reasons if r["kind"] == "ctg_pathological"]
        assert pathological and RULES[name] in pathological[0]["sentence"], reasons
        assert "FIGO 2015" in pathological[0]["rule"]
    assert len(redis.zrange(f"ctgw:figo:{tag}-reduced", 0, -1)) >= 70  # a record per minute, stored
