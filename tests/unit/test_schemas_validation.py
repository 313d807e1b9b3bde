"""Schemas round-trip; every kind of bad input becomes a reject code and a reason."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.schemas import (
    MAX_PACKET_SAMPLES,
    CtgPacket,
    DeadLetter,
    GroundTruth,
    Reading,
    RejectCode,
    VitalsObservation,
    decode_deadletter,
    decode_signal,
    encode,
    record_key,
)
from stream.core.validation import IngestError, IngestLimits, OrderGuard, Validator, parse_signal

NOW = 1_800_000_000.0
LIMITS = IngestLimits(max_message_bytes=64 * 1024, max_future_skew_s=10.0, max_age_s=3600.0)


def ctg(patient: str = "p-1", start: float = NOW - 5, n: int = 4, **kw) -> CtgPacket:
    fields = dict(patient_id=patient, bed_id="bed-3", device_id="mon-7", start_ts=start,
                  fhr=[140.0] * n, uc=[12.0] * n)
    fields.update(kw)
    return CtgPacket(**fields)


def vitals(patient: str = "p-1", ts: float = NOW - 5) -> VitalsObservation:
    return VitalsObservation(
        patient_id=patient, bed_id="bed-3", device_id="vs-2",
        heart_rate=Reading(value=88.0, ts=ts), systolic_bp=Reading(value=118.0, ts=ts),
        diastolic_bp=Reading(value=76.0, ts=ts), respiratory_rate=Reading(value=16.0, ts=ts),
        spo2=Reading(value=98.0, ts=ts), temperature_c=Reading(value=36.9, ts=ts), avpu="A", avpu_ts=ts,
    )


def test_roundtrip_ctg_packet_with_all_channels() -> None:
    p = ctg(mhr=[85.0, 0.0, 86.0, 86.5], fhr_source="fecg", fhr_quality=[3, 0, 2, 1], fhr=[140.0, 0.0, 141.25, 239.0])
    assert decode_signal(encode(p)) == p
    assert p.end_ts == pytest.approx(p.start_ts + 1.0)
    assert record_key(p) == b"p-1"


def test_roundtrip_vitals_and_partial_vitals() -> None:
    v = vitals()
    assert decode_signal(encode(v)) == v
    partial = VitalsObservation(patient_id="p-2", bed_id="b", device_id="d", spo2=Reading(value=91.0, ts=NOW))
    assert decode_signal(encode(partial)) == partial
    assert partial.observed_ts == NOW


def test_roundtrip_dead_letter_keeps_raw_bytes() -> None:
    raw = bytes(range(256))
    letter = DeadLetter.of(raw, code=RejectCode.MALFORMED, reason="x", source="test", received_ts=NOW)
    back = decode_deadletter(encode(letter))
    assert back == letter and back.raw == raw and not back.raw_truncated
    cut = DeadLetter.of(raw, code=RejectCode.TOO_LARGE, reason="x", source="t", received_ts=NOW, keep_bytes=10)
    assert cut.raw == raw[:10] and cut.raw_truncated and cut.raw_size == 256


def test_roundtrip_ground_truth() -> None:
    truth = GroundTruth(patient_id="sim-0-001", bed_id="bed-02", event="prolonged_deceleration",
                        start_ts=NOW, end_ts=NOW + 240, values={"depth_bpm": 50.0}, scenario="prolonged+normal", seed=3)
    assert GroundTruth.model_validate_json(encode(truth)) == truth and record_key(truth) == b"sim-0-001"


def reject(raw: bytes, guard: OrderGuard | None = None) -> IngestError:
    with pytest.raises(IngestError) as info:
        (Validator(LIMITS, guard) if guard else Validator(LIMITS)).validate(raw, now=NOW)
    assert info.value.reason
    return info.value


def mutate(record, **changes) -> bytes:
    obj = json.loads(encode(record))
    obj.update(changes)
    return json.dumps(obj, allow_nan=True).encode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", RejectCode.MALFORMED),
        (b"\xff\xfe\x00", RejectCode.MALFORMED),
        (b"[1, 2, 3]", RejectCode.SCHEMA),
        (b'"ctg"', RejectCode.SCHEMA),
        (b'{"kind": "ctg"}', RejectCode.SCHEMA),
        (b'{"kind": "ecg", "patient_id": "p"}', RejectCode.SCHEMA),
    ],
)
def test_malformed_and_incomplete(raw: bytes, code: RejectCode) -> None:
    assert reject(raw).code == code


def test_wrong_types_are_not_coerced() -> None:
    assert reject(mutate(ctg(), fhr=["140", "140", "140", "140"])).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), start_ts=str(NOW))).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), patient_id=17)).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), fhr=[True, 140.0, 140.0, 140.0])).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), extra_field=1)).code == RejectCode.SCHEMA


def test_nan_and_infinity_are_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        err = reject(mutate(ctg(), fhr=[140.0, bad, 140.0, 140.0]))
        assert err.code == RejectCode.RANGE and "fhr" in err.reason
        assert err.patient_id == "p-1"


def test_physiological_ranges() -> None:
    assert "outside the device range" in reject(mutate(ctg(), fhr=[140.0, 30.0, 140.0, 140.0])).reason
    assert reject(mutate(ctg(), uc=[12.0, -1.0, 12.0, 12.0])).code == RejectCode.RANGE
    assert reject(mutate(ctg(), mhr=[85.0, 300.0, 85.0, 85.0])).code == RejectCode.RANGE
    obj = json.loads(encode(vitals()))
    obj["spo2"]["value"] = 130.0
    assert reject(json.dumps(obj).encode()).code == RejectCode.RANGE
    obj = json.loads(encode(vitals()))
    obj["diastolic_bp"]["value"] = 150.0
    assert "not below systolic" in reject(json.dumps(obj).encode()).reason


def test_sizes_ids_and_sampling_rate() -> None:
    n = MAX_PACKET_SAMPLES + 1
    assert reject(mutate(ctg(), fhr=[140.0] * n, uc=[1.0] * n)).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), fhr=[], uc=[])).code == RejectCode.SCHEMA
    assert "must align" in reject(mutate(ctg(), uc=[1.0, 2.0])).reason
    assert reject(mutate(ctg(), patient_id="../../etc/passwd")).code == RejectCode.SCHEMA
    assert reject(mutate(ctg(), patient_id="x" * 65)).code == RejectCode.SCHEMA
    assert "4 Hz" in reject(mutate(ctg(), fs_hz=2.0)).reason
    assert reject(b'{"kind": "vitals", "patient_id": "p", "bed_id": "b", "device_id": "d"}').code == RejectCode.SCHEMA


def test_huge_input_refused_before_parsing() -> None:
    err = reject(b"[" * (LIMITS.max_message_bytes + 1))
    assert err.code == RejectCode.TOO_LARGE
    # Deep nesting under the limit is still only malformed, never a crash.
    assert reject(b"[" * 30_000 + b"]" * 30_000).code in (RejectCode.MALFORMED, RejectCode.SCHEMA)


def test_clock_skew_and_stale() -> None:
    assert reject(encode(ctg(start=NOW + 60))).code == RejectCode.CLOCK_SKEW
    assert reject(encode(ctg(start=NOW - 2 * 3600))).code == RejectCode.STALE
    assert reject(encode(vitals(ts=NOW + 3600))).code == RejectCode.CLOCK_SKEW
    parse_signal(encode(ctg(start=NOW + 5)), LIMITS, now=NOW)  # within the allowed skew


def test_order_per_patient() -> None:
    guard = OrderGuard()
    v = Validator(LIMITS, guard)
    v.validate(encode(ctg(start=NOW - 10)), now=NOW)
    v.validate(encode(ctg(start=NOW - 9)), now=NOW)  # contiguous
    assert reject(encode(ctg(start=NOW - 9)), guard).code == RejectCode.OUT_OF_ORDER  # duplicate
    assert reject(encode(ctg(start=NOW - 20)), guard).code == RejectCode.OUT_OF_ORDER  # earlier
    v.validate(encode(ctg(patient="p-2", start=NOW - 20)), now=NOW)  # other patients are independent
    v.validate(encode(ctg(start=NOW - 5)), now=NOW)  # a gap is fine (it is signal loss)
    v.validate(encode(vitals(ts=NOW - 30)), now=NOW)
    assert reject(encode(vitals(ts=NOW - 30)), guard).code == RejectCode.OUT_OF_ORDER


def test_order_guard_is_bounded() -> None:
    guard = OrderGuard(capacity=10)
    v = Validator(LIMITS, guard)
    for i in range(50):
        v.validate(encode(ctg(patient=f"p{i}")), now=NOW)
    assert len(guard._ctg_end) == 10


def test_judge_returns_dead_letter_with_source() -> None:
    letter = Validator(LIMITS).judge(b"nope", source="kafka:ctg.packets[1]@7", now=NOW)
    assert isinstance(letter, DeadLetter)
    assert letter.raw == b"nope" and letter.source == "kafka:ctg.packets[1]@7" and letter.code == RejectCode.MALFORMED


# -- property-based: nothing random or malformed escapes, nothing crashes ------------

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)


def _judged_once(raw: bytes) -> None:
    verdict = Validator(LIMITS).judge(raw, source="hypothesis", now=NOW)
    if isinstance(verdict, DeadLetter):
        assert verdict.reason and verdict.raw == raw and verdict.code in RejectCode
    else:
        assert isinstance(verdict, (CtgPacket, VitalsObservation))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(raw: bytes) -> None:
    _judged_once(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_never_crashes(value) -> None:
    _judged_once(json.dumps(value, allow_nan=True).encode())


ctg_fields = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["ctg", "vitals", "CTG", 1]),
        "patient_id": st.one_of(st.text(max_size=80), st.integers()),
        "bed_id": st.text(max_size=10),
        "device_id": st.just("mon-1"),
        "start_ts": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(NOW), st.text(max_size=3)),
        "fhr": st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-10, 400), st.none()), max_size=300),
        "uc": st.lists(st.floats(-5, 200), max_size=300),
    }
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ctg_fields)
def test_mutated_packets_are_judged_with_reasons(fields: dict) -> None:
    raw = json.dumps(fields, allow_nan=True).encode()
    verdict = Validator(LIMITS).judge(raw, source="hypothesis", now=NOW)
    if not isinstance(verdict, DeadLetter):
        # anything accepted really satisfies the schema's promises
        assert isinstance(verdict, CtgPacket)
        assert all(v == 0 or 50 <= v <= 240 for v in verdict.fhr)
        assert len(verdict.fhr) == len(verdict.uc) <= MAX_PACKET_SAMPLES


def test_examples_in_the_schema_doc_are_valid() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "SCHEMAS.md").read_text()
    examples = [block.split("```", 1)[0] for block in doc.split("```json")[1:]]
    assert len(examples) == 2
    for example in examples:
        decode_signal(example.strip())
