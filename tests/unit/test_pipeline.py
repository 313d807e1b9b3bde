"""The pipeline in-process on fakeredis: duplicates, window rebuild, idle patients."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from stream.core.policy import AlertPolicy
from stream.core.schemas import CtgPacket
from stream.state.alerts import AlertStore
from stream.state.windows import WindowStore
from stream.worker.pipeline import Cadence, Pipeline


def packets(patient: str, t0: float, fhr: np.ndarray) -> list[CtgPacket]:
    return [CtgPacket(patient_id=patient, bed_id="bed-p", device_id="m", start_ts=t0 + i,
                      fhr=[float(v) for v in fhr[4 * i : 4 * i + 4]], uc=[15.0] * 4) for i in range(len(fhr) // 4)]


@pytest.fixture
async def pipeline(redis):
    ward = f"w-{uuid.uuid4().hex[:6]}"
    p = Pipeline(redis, AlertStore(redis, AlertPolicy(ward_id=ward)), WindowStore(redis, capacity_s=2400),
                 Cadence(forget_idle_s=3600.0))
    yield p


async def test_duplicates_add_nothing_and_a_new_pipeline_rebuilds_the_window(pipeline) -> None:
    patient, t0 = f"pp-{uuid.uuid4().hex[:6]}", time.time() - 600
    fhr = np.full(4 * 120, 140.0)
    fhr[-4 * 20 :] = 0.0  # 20 s of loss at the end
    for pkt in packets(patient, t0, fhr):
        await pipeline.on_record(pkt)
    for pkt in packets(patient, t0, fhr)[-30:]:  # redelivered after a crash
        await pipeline.on_record(pkt)
    window = pipeline.cache[patient]
    assert window.fhr.size == fhr.size and np.array_equal(window.fhr, fhr)
    alerts = await pipeline.alerts.open_alerts()
    assert [a["kind"] for a in alerts] == ["signal_loss"]
    fresh = Pipeline(pipeline.redis, pipeline.alerts, pipeline.windows, pipeline.cadence)
    rebuilt = await fresh._window(patient, "bed-p")
    assert np.array_equal(rebuilt.fhr, fhr) and rebuilt.end_index == window.end_index
    assert rebuilt.fast.loss_samples == 4 * 20  # the fast-rule counters come back too


async def test_idle_patients_leave_memory(pipeline) -> None:
    patient = f"pp-{uuid.uuid4().hex[:6]}"
    for pkt in packets(patient, time.time() - 60, np.full(4 * 10, 140.0)):
        await pipeline.on_record(pkt)
    assert patient in pipeline.cache
    pipeline.cadence = Cadence(forget_idle_s=0.0)
    await pipeline.tick()
    assert patient not in pipeline.cache
