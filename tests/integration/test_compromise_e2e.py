"""End to end on the real embedded stack, with the served LSTM and autoencoder on Triton and the served
stacker (infra/triton/compromise.json): a bed whose trace drives the compromise risk up gets a CTG alarm
whose evidence names the risk, the share of normal labours that reach it and what raised it; a normal
bed gets no risk alarm, and both show their risk as model evidence."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from redis import Redis

from stream.core.kafka import producer_outbox
from stream.core.settings import Settings
from stream.sources.ctg_simulator import Scenario
from stream.sources.publishing import merge, publish_paced, time_base
from stream.sources.vitals_simulator import VitalsScenario
from stream.sources.ward import Bed, bed_schedule
from tests.faults import alerts_of
from tests.helpers import ctgwatch_process, env_for
from tests.integration.test_labour_figo_e2e import status_of

pytestmark = pytest.mark.integration

DURATION = 3600.0  # an hour: the risk needs the whole-labour analysis and the models' last hour
SPEED = 60.0
#: Repetitive late decelerations with reduced variability and a prolonged deceleration from minute 5:
#: the served risk passes its first threshold within the hour (checked offline with the served models).
COMPROMISED = Scenario("compromised", duration_s=DURATION, decel_kind="late", decel_span=(300.0, DURATION),
                       reduced_variability=(300.0, DURATION), prolonged=((1500.0, 1800.0),))


def test_a_trace_that_drives_the_risk_up_raises_the_risk_alarm_with_its_reasons(stack, tmp_path) -> None:
    served = Settings().compromise_model
    assert served is not None and served.is_file(), "the served stacker ships with the repository"
    tag = f"risk{uuid.uuid4().hex[:6]}"
    vitals = VitalsScenario("normal", DURATION, 300)
    beds = [Bed(0, f"{tag}-compromised", "bed-01", COMPROMISED, vitals, 31),
            Bed(1, f"{tag}-normal", "bed-02", Scenario("normal", duration_s=DURATION), vitals, 32)]
    t0 = time_base(DURATION, SPEED)
    items = list(merge(bed_schedule(b, stack.topic_names(), t0=t0, packet_s=1.0) for b in beds))

    async def publish() -> None:
        async with producer_outbox(stack, "test", max_records=100_000) as outbox:
            await publish_paced(outbox, items, speed=SPEED)

    redis = Redis.from_url(stack.redis_dsn)
    env = env_for(stack, CTGWATCH_WORKER_APP_ID=f"g-{tag}", CTGWATCH_WARD_ID=f"w-{tag}",
                  CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_MODELS_ENABLED="true",
                  CTGWATCH_COMPROMISE_MODEL=str(served))
    with ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"):
        asyncio.run(publish())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [status_of(redis, b.patient_id) for b in beds]
            if all(s.t_end and s.t_end >= t0 + DURATION - 20 and s.model_evidence for s in done):
                break
            time.sleep(1.0)
        time.sleep(3.0)
    risk_alarm = [a for a in alerts_of(redis, tag) if a["kind"] == "ctg_alarm"
                  and any(r["kind"] == "compromise_risk" for r in json.loads(a["evidence"])["reasons"])]
    assert [a["patient_id"] for a in risk_alarm] == [beds[0].patient_id], [
        (a["patient_id"], a["sentence"]) for a in alerts_of(redis, tag)]
    reason = next(r for r in json.loads(risk_alarm[0]["evidence"])["reasons"] if r["kind"] == "compromise_risk")
    assert "Risk of fetal acidaemia (cord pH < 7.05)" in reason["sentence"], reason
    assert "of normal-outcome labours ever reach this" in reason["sentence"]
    assert "Raised most by:" in reason["sentence"] and reason["values"]["reasons"], reason
    assert reason["policy"] and "compromise risk" in reason["rule"]
    for bed in beds:  # both beds show their risk on the bed page, from the served models
        evidence = status_of(redis, bed.patient_id).model_evidence or {}
        assert evidence.get("compromise_risk", {}).get("status") == "ok", evidence
        assert evidence["ctg_lstm"]["status"] == "ok" and evidence["ctg_autoencoder"]["status"] == "ok"
    normal_risk = status_of(redis, beds[1].patient_id).model_evidence["compromise_risk"]["risk_ph_below_7_05"]
    assert normal_risk < json.loads(served.read_text())["thresholds"]["t1"]
