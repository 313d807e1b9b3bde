"""The IoMT gateway with a real HTTP client and a real MLLP socket client."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from pathlib import Path

import hl7
import httpx
import pytest
from hl7.mllp import open_hl7_connection

from stream.core.ports import free_port
from stream.core.schemas import Reading, RejectCode, VitalsObservation, decode_deadletter, decode_signal, encode
from stream.core.settings import Settings
from stream.gateway.devices import DeviceRegistry
from tests.helpers import ctgwatch_process, env_for, read_topic

pytestmark = pytest.mark.integration


def hl7_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d%H%M%S.%f")[:-3] + "+0000"


def oru(control_id: str, patient: str, t: float, *, sender: str = "MON-7", fhr: str = "140^141^0^142",
        extra: list[str] | None = None, stamp: str | None = None) -> bytes:
    when = stamp or hl7_time(t)
    lines = [
        f"MSH|^~\\&|{sender}|LABOUR|CTGWATCH|HOSP|{hl7_time(time.time())}||ORU^R01^ORU_R01|{control_id}|P|2.6",
        f"PID|||{patient}^^^HOSP^MR",
        "PV1||I|LABOUR^^BED-03",
        f"OBR|1|||CTG^Cardiotocography^99CTG|||{when}",
        f"OBX|1|NA|11948-7^Fetal heart rate^LN||{fhr}|/min^^UCUM|||||R|||{when}||||MON-7",
        f"OBX|2|NA|UA^Uterine activity^99CTG||10^11^12^13||||||R|||{when}||||MON-7",
        f"OBX|3|NA|MHR^Maternal heart rate^99CTG||84^85^85^86|/min^^UCUM|||||R|||{when}||||MON-7",
        f"OBX|4|NM|8867-4^Heart rate^LN||88|/min^^UCUM|||||R|||{when}||||MON-7",
        f"OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||118|266016^MDC_DIM_MMHG^MDC|||||R|||{when}||||MON-7",
        f"OBX|6|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||74|266016^MDC_DIM_MMHG^MDC|||||R|||{when}||||MON-7",
        *(extra or []),
    ]
    return "\r".join(lines).encode()


def gateway_settings(stack: Settings, tmp: Path, **overrides) -> tuple[Settings, dict[str, str]]:
    http_port, mllp_port = free_port(), free_port()
    tokens = tmp / "tokens.json"
    env = env_for(stack, CTGWATCH_GATEWAY_HTTP_PORT=str(http_port), CTGWATCH_GATEWAY_MLLP_PORT=str(mllp_port),
                  CTGWATCH_GATEWAY_TOKENS_FILE=str(tokens), **overrides)
    settings = stack.model_copy(update={"gateway_http_port": http_port, "gateway_mllp_port": mllp_port,
                                        "gateway_tokens_file": tokens})
    return settings, env


@pytest.fixture(scope="module")
def gateway(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    settings, env = gateway_settings(stack, tmp)
    registry = DeviceRegistry(settings.tokens_file)
    tokens = {"mon-7": registry.add("mon-7"), "MON-7": registry.add("MON-7")}
    with ctgwatch_process(["gateway"], env, tmp / "gateway.log", ready="gateway ready") as proc:
        yield settings, tokens, proc


def packet(patient: str, start: float, device: str = "mon-7", **kw) -> dict:
    p = dict(kind="ctg", patient_id=patient, bed_id="bed-2", device_id=device, start_ts=start,
             fhr=[140.0, 141.0, 0.0, 139.5], uc=[10.0, 12.0, 14.0, 16.0])
    p.update(kw)
    return p


async def dead_letter_for(bootstrap: str, raw: bytes, timeout_s: float = 20.0):
    found = await read_topic(bootstrap, "ingest.deadletter", until=bool, timeout_s=timeout_s,
                             keep=lambda _k, v: decode_deadletter(v).raw == raw)
    assert found, f"no dead letter holds {raw[:60]!r}"
    return decode_deadletter(found[0][1])


async def records_of(bootstrap: str, topic: str, patient: str, count: int):
    found = await read_topic(bootstrap, topic, until=lambda kept: len(kept) >= count, timeout_s=20,
                             keep=lambda k, _v: k == patient.encode())
    return [decode_signal(v) for _, v in found]


async def test_http_valid_batch_reaches_the_topics(stack, gateway) -> None:
    settings, tokens, _ = gateway
    patient, now = f"h-{uuid.uuid4().hex[:8]}", time.time()
    batch = {"records": [packet(patient, now - 3), packet(patient, now - 2), packet(patient, now - 1),
                         json.loads(encode(VitalsObservation(patient_id=patient, bed_id="bed-2", device_id="mon-7",
                                                             spo2=Reading(value=97.0, ts=now - 1))))]}
    async with httpx.AsyncClient(base_url=f"http://{settings.gateway_host}:{settings.gateway_http_port}") as client:
        assert (await client.get("/health")).status_code == 200
        r = await client.post("/v1/ingest", json=batch, headers={"Authorization": f"Bearer {tokens['mon-7']}"})
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 4}
    ctg = await records_of(stack.bootstrap_servers, "ctg.packets", patient, 3)
    assert [p.start_ts for p in ctg] == [now - 3, now - 2, now - 1]
    vitals = await records_of(stack.bootstrap_servers, "vitals.observations", patient, 1)
    assert vitals[0].spo2.value == 97.0


async def test_http_refusals_are_dead_lettered(stack, gateway) -> None:
    settings, tokens, _ = gateway
    auth = {"Authorization": f"Bearer {tokens['mon-7']}"}
    patient, now = f"h-{uuid.uuid4().hex[:8]}", time.time()
    base = f"http://{settings.gateway_host}:{settings.gateway_http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        unauth = json.dumps(packet(patient, now - 9)).encode()
        r = await client.post("/v1/ingest", content=unauth)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = await client.post("/v1/ingest", content=unauth, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
        assert (await dead_letter_for(stack.bootstrap_servers, unauth)).code == RejectCode.UNAUTHENTICATED

        junk = b"{not json"
        r = await client.post("/v1/ingest", content=junk, headers=auth)
        assert r.status_code == 400
        assert (await dead_letter_for(stack.bootstrap_servers, junk)).code == RejectCode.MALFORMED

        bad_items = [packet(patient, now - 5, fhr=[140.0, 999.0, 140.0, 140.0]),
                     packet(patient, now - 4),
                     packet(patient, now - 3, device="someone-else"),
                     packet(patient, now + 3600)]
        r = await client.post("/v1/ingest", json={"records": bad_items}, headers=auth)
        assert r.status_code == 422
        body = r.json()
        assert body["accepted"] == [1]
        assert [(x["index"], x["code"]) for x in body["rejected"]] == [
            (0, "range"), (2, "device_mismatch"), (3, "clock_skew")]
        letter = await dead_letter_for(stack.bootstrap_servers, json.dumps(bad_items[0]).encode())
        assert letter.code == RejectCode.RANGE and "fhr[1] = 999.0" in letter.reason
        assert letter.source.startswith("http:127.0.0.1:mon-7") and letter.patient_id == patient

        huge = b"[" + b"1," * 200_000 + b"1]"
        r = await client.post("/v1/ingest", content=huge, headers=auth)
        assert r.status_code == 413
        letter = await dead_letter_for(stack.bootstrap_servers, huge[: settings.ingest_max_message_bytes])
        assert letter.raw_truncated and letter.raw_size == settings.ingest_max_message_bytes + 1


async def _exchange(settings: Settings, frames: list[bytes]) -> list[hl7.Message]:
    reader, writer = await open_hl7_connection(settings.gateway_host, settings.gateway_mllp_port)
    acks = []
    try:
        for frame in frames:
            writer.writeblock(frame)
            await writer.drain()
            acks.append(await asyncio.wait_for(reader.readmessage(), 15))
    finally:
        writer.close()
    return acks


def msa(message: hl7.Message) -> tuple[str, str, str]:
    seg = message.segment("MSA")
    return str(seg[1]), str(seg[2]), str(seg[3]) if len(seg) > 3 else ""


async def test_mllp_valid_oru_is_acknowledged_and_published(stack, gateway) -> None:
    settings, _, _ = gateway
    patient, now = f"m-{uuid.uuid4().hex[:8]}", time.time()
    unmapped = f"OBX|7|NM|999999^MDC_SOMETHING_ELSE^MDC||3||||||R|||{hl7_time(now - 2)}"
    frame = oru("C1", patient, now - 2, extra=[unmapped])
    (ack,) = await _exchange(settings, [frame])
    code, control, text = msa(ack)
    assert (code, control) == ("AA", "C1") and "1 observation(s) not mapped" in text
    (ctg,) = await records_of(stack.bootstrap_servers, "ctg.packets", patient, 1)
    assert ctg.fhr == [140.0, 141.0, 0.0, 142.0] and ctg.mhr == [84.0, 85.0, 85.0, 86.0]
    assert ctg.bed_id == "BED-03" and ctg.device_id == "MON-7" and abs(ctg.start_ts - (now - 2)) < 0.01
    (vitals,) = await records_of(stack.bootstrap_servers, "vitals.observations", patient, 1)
    assert (vitals.heart_rate.value, vitals.systolic_bp.value, vitals.diastolic_bp.value) == (88.0, 118.0, 74.0)
    letter = await dead_letter_for(stack.bootstrap_servers, frame)
    assert letter.code == RejectCode.UNSUPPORTED and "999999" in letter.reason


async def test_mllp_invalid_messages_get_nak_and_dead_letter(stack, gateway) -> None:
    settings, _, _ = gateway
    patient, now = f"m-{uuid.uuid4().hex[:8]}", time.time()
    frames = {
        "range": (oru("E1", patient, now - 5, fhr="140^400^0^142"), "AE", RejectCode.RANGE),
        "no_tz": (oru("E2", patient, now - 4, stamp="20261122101010"), "AE", RejectCode.SCHEMA),
        "sender": (oru("E3", patient, now - 3, sender="UNKNOWN-MON"), "AR", RejectCode.UNAUTHENTICATED),
        "garbage": (b"this is not hl7 at all", "AR", RejectCode.MALFORMED),  # a stranger's: sampled
        "adt": (b"MSH|^~\\&|MON-7|L|C|H|20261122101010+0000||ADT^A01|E5|P|2.6\rPID|||X1", "AR", RejectCode.UNSUPPORTED),
        "future": (oru("E6", patient, now + 7200), "AE", RejectCode.CLOCK_SKEW),
    }
    acks = await _exchange(settings, [f for f, _, _ in frames.values()])
    for (name, (frame, expected_ack, expected_code)), ack in zip(frames.items(), acks, strict=True):
        code, _, text = msa(ack)
        assert code == expected_ack, (name, str(ack))
        assert text.startswith(expected_code.value), (name, text)
        # a stranger (unknown sender, not even HL7) is sampled (first bytes, size, hash), not stored whole
        stranger = name in ("sender", "garbage")
        letter = await dead_letter_for(stack.bootstrap_servers, frame[:256] if stranger else frame)
        assert letter.code == (RejectCode.UNAUTHENTICATED if stranger else expected_code), name
        assert letter.source.startswith("mllp:127.0.0.1") and letter.raw_size == len(frame)
    # a broken frame does not take the listener down
    (ack,) = await _exchange(settings, [oru("E7", patient, now - 1)])
    assert msa(ack)[0] == "AA"


def test_gateway_holds_records_through_a_broker_outage_and_refuses_when_full(tmp_path) -> None:
    """Broker killed: the gateway keeps accepting into its outbox (202) until it is full (503 with
    Retry-After, nothing kept), and delivers everything it accepted once the broker is back."""
    from tests.faults import private_stack, restart

    with private_stack(tmp_path / "stack", services=("broker",)) as broker_settings:
        settings, env = gateway_settings(broker_settings, tmp_path, CTGWATCH_GATEWAY_OUTBOX_RECORDS="6",
                                         CTGWATCH_GATEWAY_PUBLISH_TIMEOUT_S="1", CTGWATCH_OUTAGE_RETRY_MAX_S="1")
        token = DeviceRegistry(settings.tokens_file).add("mon-7")
        with ctgwatch_process(["gateway"], env, tmp_path / "gw.log", ready="gateway ready"):
            patient, now = f"bp-{uuid.uuid4().hex[:8]}", time.time()
            asyncio.run(_accept_until_full(settings, token, patient, now, broker_settings))
            # down longer than the client's own delivery timeout (1 s here, 5 s by default): nothing it
            # still retried internally can land in the new broker ahead of what the outbox resends
            time.sleep(2.5)
            restart(broker_settings, "broker")
            delivered = asyncio.run(_wait_delivered(settings))
            assert delivered["awaiting_broker"] == 0 and delivered["broker_reachable"], delivered
            stamps = asyncio.run(read_topic(
                broker_settings.bootstrap_servers, "ctg.packets", timeout_s=10, until=lambda kept: False,
                keep=lambda _k, v: decode_signal(v).patient_id == patient))
            # the 6 accepted while the broker was away, in order, after the one the dead broker had
            # acknowledged (its log died with it: the outbox kept it and sent it again); a record may
            # arrive twice (at-least-once; the worker skips what it stored already)
            first_seen = list(dict.fromkeys(round(decode_signal(v).start_ts - now) for _k, v in stamps))
            assert first_seen == [-10, -9, -8, -7, -6, -5, -4]
            assert "the broker was recreated" in (tmp_path / "gw.log").read_text()


async def _accept_until_full(settings: Settings, token: str, patient: str, now: float, broker_settings) -> None:
    from tests.faults import crash

    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_http_port}", timeout=30) as c:
        assert (await c.post("/v1/ingest", json=packet(patient, now - 10), headers=auth)).status_code == 202
        while (await c.get("/health")).json()["awaiting_broker"]:
            await asyncio.sleep(0.1)  # delivered to the broker that is about to die
        crash(broker_settings, "broker")
        for k in range(9, 3, -1):
            r = await c.post("/v1/ingest", json=packet(patient, now - k), headers=auth)
            assert r.status_code == 202, r.text  # held in the outbox
        t0 = time.monotonic()
        r = await c.post("/v1/ingest", json=packet(patient, now - 3), headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
        assert time.monotonic() - t0 < 2.0  # refused at once, not after a timeout
        health = (await c.get("/health")).json()
        assert health["awaiting_broker"] == 6


async def _wait_delivered(settings: Settings) -> dict:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_http_port}", timeout=30) as c:
        deadline = time.monotonic() + 30
        while True:
            health = (await c.get("/health")).json()
            if health["awaiting_broker"] == 0 or time.monotonic() > deadline:
                return health
            await asyncio.sleep(0.5)



def test_gateway_hardening_sampling_rate_limits_and_mllp_guards(stack, tmp_path) -> None:
    settings, env = gateway_settings(
        stack, tmp_path, CTGWATCH_GATEWAY_REFUSED_SAMPLES_PER_MIN="3", CTGWATCH_GATEWAY_DEVICE_RATE_PER_S="0.2",
        CTGWATCH_GATEWAY_DEVICE_BURST="3", CTGWATCH_GATEWAY_MLLP_SECRET="s3cret",
        CTGWATCH_GATEWAY_MLLP_FRAME_TIMEOUT_S="1", CTGWATCH_GATEWAY_MLLP_IDLE_TIMEOUT_S="2")
    registry = DeviceRegistry(settings.tokens_file)
    token, _ = registry.add("mon-7"), registry.add("MON-7")
    with ctgwatch_process(["gateway"], env, tmp_path / "gw.log", ready="gateway ready"):
        asyncio.run(_hardening(stack, settings, token))


async def _hardening(stack, settings: Settings, token: str) -> None:
    marker = uuid.uuid4().hex
    body = b'{"marker": "' + marker.encode() + b'", "pad": "' + b"x" * 262_000 + b'"}'
    base = f"http://127.0.0.1:{settings.gateway_http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        statuses = [(await client.post("/v1/ingest", content=body)).status_code for _ in range(20)]
        assert statuses == [401] * 20
        auth = {"Authorization": f"Bearer {token}"}
        patient, now = f"rl-{marker[:8]}", time.time()
        rated = [(await client.post("/v1/ingest", json=packet(patient, now - 20 + k), headers=auth))
                 for k in range(5)]
        assert [r.status_code for r in rated] == [202, 202, 202, 429, 429]
        assert rated[3].headers["retry-after"] == "1"
    samples = await read_topic(stack.bootstrap_servers, "ingest.deadletter", until=lambda kept: len(kept) > 3,
                               timeout_s=8, keep=lambda _k, v: marker.encode() in decode_deadletter(v).raw)
    letters = [decode_deadletter(v) for _k, v in samples]
    assert len(letters) == 3  # 20 refused, 3 sampled this minute, none stored whole
    assert all(len(x.raw) == 256 and x.raw_size == len(body) and "sha256" in x.reason for x in letters)

    # MLLP: unframed bytes get a NAK and the connection closes; an idle one is closed too
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.gateway_mllp_port)
    writer.write(b"hello, is this the lab?")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # read to EOF: the gateway hangs up
    assert b"MSA|AR" in answer and b"no complete frame" in answer
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.gateway_mllp_port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed after the idle timeout
    writer.close()

    # the shared secret in MSH-8
    patient, now = f"ms-{marker[:8]}", time.time()
    without = oru("S1", patient, now - 3)
    with_secret = oru("S2", patient, now - 2).replace(b"||ORU^R01", b"|s3cret|ORU^R01", 1)
    acks = await _exchange(settings, [without, with_secret])
    assert [msa(a)[0] for a in acks] == ["AR", "AA"]
    assert "shared secret" in msa(acks[0])[2]

    # 1.5 MB in one frame from the device: AR, and the dead letter keeps the first 256 KB
    big = oru("S3", patient, now - 1, extra=["NTE|1||" + "y" * 1_500_000]).replace(b"||ORU^R01", b"|s3cret|ORU^R01", 1)
    (ack,) = await _exchange(settings, [big])
    assert msa(ack)[0] == "AR"
    letter = await dead_letter_for(stack.bootstrap_servers, big[: settings.ingest_max_message_bytes])
    assert letter.code == RejectCode.TOO_LARGE and letter.raw_truncated and letter.raw_size == len(big)

    # a stranger's garbage frames are counted and sampled, not stored whole (100 frames of 300 kB made
    # 100 dead letters, 25 MiB in the memory-only broker)
    junk = [b"\x00garbage " + uuid.uuid4().hex.encode() + b" " + b"z" * 300_000 for _ in range(20)]
    acks = await _exchange(settings, junk)
    assert all(msa(a)[0] == "AR" for a in acks)
    kept = await read_topic(stack.bootstrap_servers, "ingest.deadletter", until=lambda found: len(found) > 3,
                            timeout_s=6, keep=lambda _k, v: decode_deadletter(v).raw.startswith(b"\x00garbage "))
    assert len(kept) <= 3 and all(len(decode_deadletter(v).raw) <= 256 for _k, v in kept)


async def test_the_gateway_serves_no_api_documents(gateway) -> None:
    """/docs, /openapi.json and /redoc answered 200 to anyone, without a device token."""
    settings, _, _ = gateway
    async with httpx.AsyncClient(base_url=f"http://{settings.gateway_host}:{settings.gateway_http_port}") as client:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/health")).status_code == 200


async def test_devices_added_and_removed_beside_a_running_gateway_count_at_once(stack, gateway) -> None:
    """A device registered while the gateway runs is accepted, and a removed one refused, within 5 s."""
    import asyncio

    settings, _, _ = gateway
    beside = DeviceRegistry(settings.tokens_file)  # what `ctgwatch gateway add-device` does, in another process
    token = beside.add("late-dev")

    async def post(client: httpx.AsyncClient) -> int:  # a new patient each time: no packet overlaps another
        patient = f"h-{uuid.uuid4().hex[:8]}"
        r = await client.post("/v1/ingest", json={"records": [packet(patient, time.time() - 1, device="late-dev")]},
                              headers={"Authorization": f"Bearer {token}"})
        return r.status_code

    async with httpx.AsyncClient(base_url=f"http://{settings.gateway_host}:{settings.gateway_http_port}") as client:
        for _ in range(50):
            if await post(client) == 202:
                break
            await asyncio.sleep(0.1)
        assert await post(client) == 202
        beside.remove("late-dev")
        started = time.monotonic()
        while await post(client) != 401:
            assert time.monotonic() - started < 5.0, "a removed device still accepted after 5 s"
            await asyncio.sleep(0.1)
