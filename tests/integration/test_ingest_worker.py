"""The worker's ingest agents against the real broker: bad input is dead-lettered, never fatal."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from stream.core.schemas import CtgPacket, Reading, RejectCode, VitalsObservation, decode_deadletter, encode
from tests.helpers import ctgwatch_process, env_for, read_topic

pytestmark = pytest.mark.integration

# Payloads hypothesis draws for the live agent: random bytes, random JSON,
# records with NaN / wrong types / huge arrays / far-future or old or
# out-of-order timestamps.
def _packet(patient: str, start: float, n: int = 4, **kw) -> dict:
    p = dict(kind="ctg", patient_id=patient, bed_id="bed-1", device_id="mon-1", start_ts=start,
             fhr=[140.0] * n, uc=[12.0] * n)
    p.update(kw)
    return p


def bad_payloads(now: float):
    marker = st.uuids().map(lambda u: f"t-{u.hex[:12]}")
    as_bytes = lambda obj: json.dumps(obj, allow_nan=True).encode()  # noqa: E731
    return st.one_of(
        st.binary(min_size=0, max_size=300),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4).map(as_bytes),
        marker.map(lambda p: as_bytes(_packet(p, now, fhr=[140.0, float("nan"), 140.0, 140.0]))),
        marker.map(lambda p: as_bytes(_packet(p, now, fhr=["140"] * 4))),
        marker.map(lambda p: as_bytes(_packet(p, now, n=5000))),
        marker.map(lambda p: as_bytes(_packet(p, now + 86400 * 365))),
        marker.map(lambda p: as_bytes(_packet(p, 1.0))),
        marker.map(lambda p: as_bytes({**_packet(p, now), "uc": [12.0] * 3})),
        marker.map(lambda p: b"[" * 30000 + p.encode()),
    )


@pytest.fixture(scope="module")
def worker(stack, tmp_path_factory):
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = env_for(stack, CTGWATCH_WORKER_APP_ID=f"test-{uuid.uuid4().hex[:8]}", CTGWATCH_WORKER_METRICS_PORT="0",
                  CTGWATCH_WORKER_SESSION_TIMEOUT_S="6", CTGWATCH_WORKER_HEARTBEAT_S="1")
    with ctgwatch_process(["worker", "--loglevel", "info"], env, log, ready="[^Worker]: Ready") as proc:
        yield proc, log


async def _send(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in payloads:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _dead_letters_for(bootstrap: str, topic: str, raws: set[bytes], timeout_s: float = 40.0,
                            expect: set[bytes] | None = None) -> dict[bytes, list]:
    """Dead letters holding any of ``raws``, read until those of ``expect`` (default: all) arrived."""
    expect = raws if expect is None else expect
    found: dict[bytes, list] = {}

    def keep(_k, v):
        letter = decode_deadletter(v)
        if letter.raw in raws and letter.source.startswith(f"kafka:{topic}["):
            found.setdefault(letter.raw, []).append(letter)
            return True
        return False

    await read_topic(bootstrap, "ingest.deadletter", until=lambda _kept: set(found) >= expect, keep=keep,
                     timeout_s=timeout_s)
    return found


@hsettings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_bad_input_lands_in_dead_letter_and_agent_survives(stack, worker, data) -> None:
    proc, log = worker
    now = time.time()
    batch = data.draw(st.lists(bad_payloads(now), min_size=5, max_size=25, unique=True))
    # a valid packet, the same packet again (a redelivery: already stored, skipped, not a dead
    # letter) and a different packet over the same samples (out of order: dead-lettered); proves
    # the agent is still alive and still judging after the bad input
    patient = f"ok-{uuid.uuid4().hex[:10]}"
    good = encode(CtgPacket(**_packet(patient, now - 5)))
    clash = encode(CtgPacket(**_packet(patient, now - 5, fhr=[150.0] * 4)))
    payloads = [(b"k", raw) for raw in batch] + [(patient.encode(), good), (patient.encode(), good),
                                                 (patient.encode(), clash)]
    await _send(stack.bootstrap_servers, "ctg.packets", payloads)

    found = await _dead_letters_for(stack.bootstrap_servers, "ctg.packets", set(batch) | {good, clash},
                                    expect=set(batch) | {clash})
    assert set(found) == set(batch) | {clash}, f"missing dead letters; worker log:\n{log.read_text()[-2000:]}"
    for raw in batch:
        assert len(found[raw]) >= 1 and all(letter.reason for letter in found[raw])
    assert [letter.code for letter in found[clash]] == [RejectCode.OUT_OF_ORDER]
    assert proc.poll() is None, "the worker died"


async def test_vitals_agent_dead_letters_too(stack, worker) -> None:
    now = time.time()
    patient = f"v-{uuid.uuid4().hex[:10]}"
    ok = encode(VitalsObservation(patient_id=patient, bed_id="b", device_id="d", heart_rate=Reading(value=80.0, ts=now)))
    nan = json.dumps({"kind": "vitals", "patient_id": patient, "bed_id": "b", "device_id": "d",
                      "spo2": {"value": float("nan"), "ts": now}}, allow_nan=True).encode()
    older = encode(VitalsObservation(patient_id=patient, bed_id="b", device_id="d",
                                     heart_rate=Reading(value=81.0, ts=now - 1)))
    await _send(stack.bootstrap_servers, "vitals.observations", [(patient.encode(), nan), (patient.encode(), ok),
                                                                 (patient.encode(), ok), (patient.encode(), older)])
    found = await _dead_letters_for(stack.bootstrap_servers, "vitals.observations", {nan, ok, older},
                                    expect={nan, older})
    assert found[nan][0].code == RejectCode.RANGE and "spo2" in found[nan][0].reason
    assert [letter.code for letter in found[older]] == [RejectCode.OUT_OF_ORDER]
    assert ok not in found  # the second delivery of the same observation was recognised as such
