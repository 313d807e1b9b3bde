"""HL7 v2 ORU^R01 mapping and ACKs; device tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import hl7
import pytest

from stream.core.errors import SetupError
from stream.core.schemas import CtgPacket, RejectCode, VitalsObservation
from stream.core.validation import IngestError
from stream.gateway.devices import DeviceRegistry
from stream.gateway.hl7map import CODE_TABLE, ack, map_oru, parse_message

T = "20261122101010.250+0000"
T_EPOCH = 1795342210.25


def message(*obx: str, msh9: str = "ORU^R01^ORU_R01", pid: str = "PID|||P-1^^^H^MR", pv1: str = "PV1||I|LD^^BED-4") -> str:
    return "\r".join([f"MSH|^~\\&|MON-1|LD|CTGWATCH|H|{T}||{msh9}|CTRL9|P|2.6", pid, pv1, *obx])


FHR = f"OBX|1|NA|11948-7^FHR^LN||140^0^141.5^142|/min^^UCUM|||||R|||{T}"
UC = f"OBX|2|NA|UA^Uterine activity^99CTG||10^11^12^13||||||R|||{T}"


def mapped(text: str):
    return map_oru(parse_message(text))


def failure(text: str) -> IngestError:
    with pytest.raises(IngestError) as info:
        mapped(text)
    return info.value


def test_ctg_waveforms_become_one_packet() -> None:
    oru = mapped(message(FHR, UC, f"OBX|3|NA|MHR^MHR^99CTG||80^81^82^83|/min|||||R|||{T}"))
    (packet,) = oru.records
    assert isinstance(packet, CtgPacket)
    assert packet.fhr == [140.0, 0.0, 141.5, 142.0] and packet.uc == [10.0, 11.0, 12.0, 13.0]
    assert packet.mhr == [80.0, 81.0, 82.0, 83.0]
    assert (packet.patient_id, packet.bed_id, packet.device_id) == ("P-1", "BED-4", "MON-1")
    assert packet.start_ts == pytest.approx(T_EPOCH)
    assert oru.control_id == "CTRL9" and oru.unmapped == []


@pytest.mark.parametrize(("system", "code", "field", "value", "unit"), [
    ("LN", "8867-4", "heart_rate", "92", "/min"),
    ("MDC", "149514", "heart_rate", "92", "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
    ("MDC", "150021", "systolic_bp", "121", "266016^MDC_DIM_MMHG^MDC"),
    ("LN", "8462-4", "diastolic_bp", "77", "mm[Hg]"),
    ("MDC", "151562", "respiratory_rate", "18", "/min"),
    ("MDC", "150456", "spo2", "96", "%"),
    ("LN", "8310-5", "temperature_c", "37.4", "Cel"),
])
def test_vital_sign_codes(system: str, code: str, field: str, value: str, unit: str) -> None:
    (obs,) = mapped(message(f"OBX|1|NM|{code}^x^{system}||{value}|{unit}|||||R|||{T}")).records
    assert isinstance(obs, VitalsObservation)
    reading = getattr(obs, field)
    assert reading.value == float(value) and reading.ts == pytest.approx(T_EPOCH)


def test_code_table_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "HL7_MAPPING.md").read_text()
    for (system, code), entry in CODE_TABLE.items():
        assert f"`{code}`" in doc and entry.field in doc, (system, code)


def test_unmapped_observations_are_reported_not_hidden() -> None:
    oru = mapped(message(FHR, UC, f"OBX|3|NM|424242^Foo^MDC||1||||||R|||{T}", "OBX|4||150020^NIBP^MDC|1.0.1"))
    assert oru.unmapped == ["OBX-3 424242^MDC"]  # the empty container row is not an observation


@pytest.mark.parametrize(("text", "code", "words"), [
    (message(FHR, UC, msh9="ADT^A01"), RejectCode.UNSUPPORTED, "not ORU^R01"),
    (message(FHR), RejectCode.SCHEMA, "both the FHR and the UC"),
    (message(FHR.replace("|NA|", "|NM|"), UC), RejectCode.SCHEMA, "numeric array"),
    (message(FHR.replace("140^0", "140^abc"), UC), RejectCode.SCHEMA, "not a number"),
    (message(FHR.replace("140^0", "140^300"), UC), RejectCode.RANGE, "outside the device range"),
    (message(FHR.replace(T, "20261122101010"), UC), RejectCode.SCHEMA, "no UTC offset"),
    (message(FHR.replace(T, "yesterday"), UC), RejectCode.SCHEMA, "not an HL7 timestamp"),
    (message(FHR.replace("/min^^UCUM", "Hz"), UC), RejectCode.UNSUPPORTED, "unit 'Hz'"),
    (message(FHR, UC, pid="PID|||"), RejectCode.SCHEMA, "patient id is empty"),
    (message(FHR, UC, pid="PID|||../etc"), RejectCode.SCHEMA, "do not allow"),
    (message(f"OBX|1|NM|999^x^MDC||1||||||R|||{T}"), RejectCode.UNSUPPORTED, "no observation ctgwatch maps"),
    (message(f"OBX|1|NM|LN^x^LN||1||||||R|||{T}"), RejectCode.UNSUPPORTED, "no observation"),
])
def test_refusals_name_the_problem(text: str, code: RejectCode, words: str) -> None:
    err = failure(text)
    assert err.code == code and words in err.reason


def test_not_hl7_is_malformed() -> None:
    with pytest.raises(IngestError) as info:
        parse_message("hello world")
    assert info.value.code == RejectCode.MALFORMED


def test_acks_answer_the_control_id_with_text() -> None:
    msg = parse_message(message(FHR, UC))
    positive = hl7.parse(ack(msg, "AA"))
    assert str(positive.segment("MSA")[1]) == "AA" and str(positive.segment("MSA")[2]) == "CTRL9"
    assert str(positive.segment("MSH")[9]).startswith("ACK")
    negative = hl7.parse(ack(msg, "AE", "range: fhr|bad"))
    assert str(negative.segment("MSA")[1]) == "AE"
    assert negative.unescape(str(negative.segment("MSA")[3])) == "range: fhr|bad"
    assert negative.segment("ERR")
    blind = hl7.parse(ack(None, "AR", "junk"))
    assert str(blind.segment("MSA")[1]) == "AR"


def test_device_registry_stores_only_digests(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    registry = DeviceRegistry(path)
    token = registry.add("mon-1")
    other = registry.add("mon-2")
    assert registry.device_for(token) == "mon-1" and registry.device_for(other) == "mon-2"
    assert registry.device_for("wrong") is None and registry.device_for(None) is None
    assert token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DeviceRegistry(path).device_for(token) == "mon-1"  # survives a restart
    new_token = registry.add("mon-1")  # re-key: the old token stops working
    assert registry.device_for(token) is None and registry.device_for(new_token) == "mon-1"
    assert registry.remove("mon-2") and registry.device_for(other) is None
    with pytest.raises(SetupError):
        registry.add("bad id with spaces")
    path.write_text("{broken")
    with pytest.raises(SetupError):
        DeviceRegistry(path)


def test_a_running_gateway_follows_devices_added_and_removed_beside_it(tmp_path) -> None:
    """`gateway remove-device` on a running gateway: its posts kept getting 202, and a device added later got 401
    until a restart (the file was never reread). The gateway's registry follows the file within a second."""
    now = [0.0]
    path = tmp_path / "device-tokens.json"
    gateway = DeviceRegistry(path, clock=lambda: now[0])
    cli = DeviceRegistry(path)  # `ctgwatch gateway add-device / remove-device` in another process
    old = cli.add("mon-1")
    now[0] += 2
    assert gateway.device_for(old) == "mon-1" and gateway.is_registered("mon-1")
    cli.remove("mon-1")
    new = cli.add("mon-2")
    assert gateway.device_for(old) == "mon-1"  # within the recheck time the last list still stands
    now[0] += DeviceRegistry.RECHECK_S
    assert gateway.device_for(old) is None and not gateway.is_registered("mon-1")
    assert gateway.device_for(new) == "mon-2" and gateway.devices() == ["mon-2"]
    path.write_text("{not json")  # a broken file keeps the last good list
    now[0] += DeviceRegistry.RECHECK_S
    assert gateway.device_for(new) == "mon-2"


def test_mllp_off_loopback_needs_an_allow_list_or_a_secret() -> None:
    """MLLP trusted MSH-3 by default: any peer naming a registered device got AA for any patient."""
    from stream.core.errors import SetupError
    from stream.gateway.mllp import MllpPolicy, require_mllp_authentication

    with pytest.raises(SetupError, match="CTGWATCH_GATEWAY_MLLP_ALLOW"):
        require_mllp_authentication("0.0.0.0", MllpPolicy())
    require_mllp_authentication("127.0.0.1", MllpPolicy())
    require_mllp_authentication("0.0.0.0", MllpPolicy.of(["10.20.0.0/16"], None, 300, 10))
    require_mllp_authentication("0.0.0.0", MllpPolicy.of([], "s3cret", 300, 10))
