"""End to end on the real embedded stack, with the served LSTM and autoencoder on Triton and the served
stacker (infra/triton/compromise.json): a bed replaying a real acidaemic labour whose trace drives the
compromise risk up gets a CTG alarm whose evidence names the risk, the share of normal labours that reach
it and what raised it; a normal simulated bed gets no risk alarm; both show their risk as model evidence.

The acidaemic labour is chosen from the CTU-UHB directory as the one the served models keep above the
alarm's threshold longest (skipped without the directory). Simulated traces do not serve: the LSTM, fitted
on real recordings, reads them all as low-risk (about 1%), so no simulated pattern drives the risk up.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import numpy as np
import pytest
from redis import Redis

from models.serving.compromise import Stacker, risk_inputs
from stream.core.kafka import producer_outbox
from stream.core.settings import Settings
from stream.sources.ctg_simulator import Scenario
from stream.sources.publishing import Scheduled, ctg_packets, merge, publish_paced, time_base
from stream.sources.vitals_simulator import VitalsScenario
from stream.sources.ward import Bed, bed_schedule
from tests.faults import alerts_of
from tests.helpers import ctgwatch_process, env_for
from tests.integration.test_labour_figo_e2e import status_of

pytestmark = pytest.mark.integration

SPEED = 60.0
#: The chosen labour must hold the risk above its first threshold this long (minutes), well past the
#: policy's qualification, so that the stream's own model rounds see it as the offline replay does.
LONGEST_RUN_MIN = 12


def riskiest_acidaemic_labour(settings: Settings, stacker: Stacker):  # noqa: ANN201
    """The pH < 7.05 record whose served risk stays at or above the first threshold longest, and that run."""
    from stream.evaluation.risk_replay import served_record
    from stream.evaluation.streaming import stream_observations
    from stream.sources.recordings import list_records, read_recording

    best = (0, None)
    for name in list_records(settings.ctu_uhb_dir):
        rec = read_recording(name, settings.ctu_uhb_dir)
        if rec.ph is None or rec.ph >= 7.05:
            continue
        served = served_record(stacker, settings.triton_model_repository, rec.fhr, rec.uc, rec.fs)
        run = longest = 0

        def seen(t: float, analysis, served=served) -> None:  # noqa: ANN001
            nonlocal run, longest
            i = np.flatnonzero(np.isclose(served.times, t))
            if t % 60 < 1e-6 and i.size:
                k = int(i[0])
                raw = risk_inputs(analysis, float(served.lstm[k]), served.autoencoder[max(0, k - 59):k + 1])
                run = run + 1 if stacker.predict(raw)["ph_below_7_05"] >= stacker.thresholds["t1"] else 0
                longest = max(longest, run)

        for _ in stream_observations(rec.fhr, rec.uc, rec.fs, step_s=60.0, on_analysis=seen):
            pass
        if longest > best[0]:
            best = (longest, rec)
    return best


def test_a_labour_that_drives_the_risk_up_raises_the_risk_alarm_with_its_reasons(stack, tmp_path) -> None:
    served = Settings().compromise_model
    assert served is not None and served.is_file(), "the served stacker ships with the repository"
    settings = Settings()
    if not settings.ctu_uhb_dir.is_dir():
        pytest.skip(f"no CTU-UHB directory at {settings.ctu_uhb_dir} (CTGWATCH_CTU_UHB_DIR)")
    stacker = Stacker.load(served)
    longest, recording = riskiest_acidaemic_labour(settings, stacker)
    if recording is None or longest < LONGEST_RUN_MIN:
        pytest.skip(f"no acidaemic labour here keeps the served risk up for {LONGEST_RUN_MIN} min")
    tag = f"risk{uuid.uuid4().hex[:6]}"
    duration = recording.fhr.size / recording.fs
    t0 = time_base(duration, SPEED)
    acidaemic = f"{tag}-ctu{recording.record_id}"
    normal = Bed(1, f"{tag}-normal", "bed-02", Scenario("normal", duration_s=duration),
                 VitalsScenario("normal", duration, 300), 32)
    topics = stack.topic_names()
    replayed = [Scheduled(offset + len(p.fhr) / 4.0, seq, topics.ctg, p) for seq, (offset, p, _) in enumerate(ctg_packets(
        patient_id=acidaemic, bed_id="bed-01", device_id="replay", fhr=recording.fhr, uc=recording.uc, t0=t0, packet_s=1.0))]
    items = list(merge([replayed, bed_schedule(normal, topics, t0=t0, packet_s=1.0)]))

    async def publish() -> None:
        async with producer_outbox(stack, "test", max_records=100_000) as outbox:
            await publish_paced(outbox, items, speed=SPEED)

    redis = Redis.from_url(stack.redis_dsn)
    env = env_for(stack, CTGWATCH_WORKER_APP_ID=f"g-{tag}", CTGWATCH_WARD_ID=f"w-{tag}",
                  CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_MODELS_ENABLED="true",
                  CTGWATCH_COMPROMISE_MODEL=str(served))
    patients = (acidaemic, normal.patient_id)
    # One CTG alarm per patient lists its *current* reasons: the risk may be one of them for a while (beside a
    # tachycardia, say) and gone by the end, so the alarms are watched while the labour plays.
    seen: dict[str, dict] = {}
    stop = threading.Event()

    def watch() -> None:
        watcher = Redis.from_url(stack.redis_dsn)
        while not stop.is_set():
            for a in alerts_of(watcher, tag):
                for r in json.loads(a["evidence"]).get("reasons", []):
                    if a["kind"] == "ctg_alarm" and r["kind"] == "compromise_risk":
                        seen.setdefault(a["patient_id"], r)
            stop.wait(0.5)
        watcher.close()

    watcher = threading.Thread(target=watch, daemon=True)
    with ctgwatch_process(["worker"], env, tmp_path / "worker.log", ready="[^Worker]: Ready"):
        watcher.start()
        asyncio.run(publish())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [status_of(redis, p) for p in patients]
            if all(s.t_end and s.t_end >= t0 + duration - 20 and s.model_evidence for s in done):
                break
            time.sleep(1.0)
        time.sleep(3.0)
        stop.set()
        watcher.join(10)
    assert list(seen) == [acidaemic], (seen, [(a["patient_id"], a["sentence"]) for a in alerts_of(redis, tag)])
    reason = seen[acidaemic]
    assert "Risk of fetal acidaemia (cord pH < 7.05)" in reason["sentence"], reason
    assert "of normal-outcome labours ever reach this" in reason["sentence"]
    assert "Raised most by:" in reason["sentence"] and reason["values"]["reasons"], reason
    assert reason["policy"] and "compromise risk" in reason["rule"]
    for patient in patients:  # both beds show their risk on the bed page, from the served models
        evidence = status_of(redis, patient).model_evidence or {}
        assert evidence.get("compromise_risk", {}).get("status") == "ok", evidence
        assert evidence["ctg_lstm"]["status"] == "ok" and evidence["ctg_autoencoder"]["status"] == "ok"
    normal_risk = status_of(redis, normal.patient_id).model_evidence["compromise_risk"]["risk_ph_below_7_05"]
    assert normal_risk < stacker.thresholds["t1"]
