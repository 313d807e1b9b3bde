"""HL7 v2 ORU^R01 (IHE PCD-01 style) observations -> ctgwatch records.

What the gateway maps (docs/HL7_MAPPING.md has the same table for
integrators):

- patient: PID-3 first component; bed: PV1-3 third component (bed), else the
  first (point of care); device: OBX-18 first component, else MSH-3.
- CTG waveforms: OBX value type ``NA`` (numeric array), samples separated by
  the component separator at 4 Hz, OBX-14 = time of the first sample. FHR and
  UC are required together; the maternal heart-rate channel is optional.
- Maternal vital signs: OBX value type ``NM``, OBX-14 = time of measurement.

Codes (OBX-3: ``code^text^system``; system ``LN`` = LOINC, ``MDC`` = ISO/IEEE
11073-10101). LOINC codes per the FHIR vital-signs profile; MDC codes are the
32-bit context-free codes (partition 2 SCADA x 65536 + term code). There is no
LOINC or MDC code we could verify for a uterine-activity or CTG maternal-HR
waveform, so those use local codes in the HL7 local coding system ``99CTG``
(HL7 v2 reserves ``99zzz`` for local tables) until RTMMS terms are confirmed.

Timestamps must carry a UTC offset (``YYYYMMDDHHMMSS[.S]+ZZZZ``): a time
without one is ambiguous by hours, which is unacceptable on a CTG trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hl7
from pydantic import ValidationError

from stream.core.schemas import (
    CtgPacket,
    Reading,
    RejectCode,
    VitalsObservation,
)
from stream.core.validation import IngestError

_ID_CLEAN = re.compile(r"[^A-Za-z0-9._:\-]")


@dataclass(frozen=True)
class CodeMap:
    field: str  # CtgPacket channel (fhr, uc, mhr) or VitalsObservation field
    waveform: bool
    units: tuple[str, ...]  # accepted OBX-6 first components ("" = none given)
    description: str


_BPM = ("/min", "bpm", "{beats}/min", "264864", "MDC_DIM_BEAT_PER_MIN", "")
_MMHG = ("mm[Hg]", "mmHg", "266016", "MDC_DIM_MMHG", "")
_PERCENT = ("%", "262688", "MDC_DIM_PERCENT", "")
_CEL = ("Cel", "degC", "°C", "268192", "MDC_DIM_DEGC", "")
_RESP = ("/min", "{breaths}/min", "264928", "MDC_DIM_RESP_PER_MIN", "")

#: (coding system, code) -> what it becomes.
CODE_TABLE: dict[tuple[str, str], CodeMap] = {
    ("LN", "11948-7"): CodeMap("fhr", True, _BPM, "Fetal heart rate by US (LOINC)"),
    ("99CTG", "FHR"): CodeMap("fhr", True, _BPM, "Fetal heart rate, CTG channel (local)"),
    ("99CTG", "UA"): CodeMap("uc", True, ("", "[arb'U]", "mm[Hg]", "mmHg"), "Uterine activity, toco or IUP (local)"),
    ("99CTG", "MHR"): CodeMap("mhr", True, _BPM, "Maternal heart rate, CTG channel (local)"),
    ("LN", "8867-4"): CodeMap("heart_rate", False, _BPM, "Heart rate (LOINC)"),
    ("MDC", "147842"): CodeMap("heart_rate", False, _BPM, "MDC_ECG_HEART_RATE"),
    ("MDC", "149514"): CodeMap("heart_rate", False, _BPM, "MDC_PULS_RATE"),
    ("MDC", "149530"): CodeMap("heart_rate", False, _BPM, "MDC_PULS_OXIM_PULS_RATE"),
    ("LN", "8480-6"): CodeMap("systolic_bp", False, _MMHG, "Systolic blood pressure (LOINC)"),
    ("MDC", "150021"): CodeMap("systolic_bp", False, _MMHG, "MDC_PRESS_BLD_NONINV_SYS"),
    ("LN", "8462-4"): CodeMap("diastolic_bp", False, _MMHG, "Diastolic blood pressure (LOINC)"),
    ("MDC", "150022"): CodeMap("diastolic_bp", False, _MMHG, "MDC_PRESS_BLD_NONINV_DIA"),
    ("LN", "9279-1"): CodeMap("respiratory_rate", False, _RESP, "Respiratory rate (LOINC)"),
    ("MDC", "151562"): CodeMap("respiratory_rate", False, _RESP, "MDC_RESP_RATE"),
    ("LN", "2708-6"): CodeMap("spo2", False, _PERCENT, "Oxygen saturation in arterial blood (LOINC)"),
    ("LN", "59408-5"): CodeMap("spo2", False, _PERCENT, "Oxygen saturation by pulse oximetry (LOINC)"),
    ("MDC", "150456"): CodeMap("spo2", False, _PERCENT, "MDC_PULS_OXIM_SAT_O2"),
    ("LN", "8310-5"): CodeMap("temperature_c", False, _CEL, "Body temperature (LOINC)"),
    ("MDC", "150364"): CodeMap("temperature_c", False, _CEL, "MDC_TEMP_BODY"),
}
_SYSTEM_ALIASES = {"LOINC": "LN", "LN": "LN", "MDC": "MDC", "99CTG": "99CTG"}


@dataclass(frozen=True)
class Oru:
    """A mapped message: the records it yields and the OBX rows we do not map."""

    control_id: str
    records: list[CtgPacket | VitalsObservation]
    unmapped: list[str]


def _fail(code: RejectCode, reason: str, patient: str | None = None) -> IngestError:
    return IngestError(code, reason, patient)


def parse_message(text: str) -> hl7.Message:
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except Exception as exc:  # python-hl7 raises assorted errors on junk
        raise _fail(RejectCode.MALFORMED, f"not an HL7 v2 message: {type(exc).__name__}: {exc}"[:300]) from None
    return message


def _component(field, index: int = 0) -> str:
    """The ``index``-th component of a field's first repetition, as text."""
    if field is None:
        return ""
    text = str(field)
    parts = text.split("~")[0].split("^")
    return parts[index].strip() if index < len(parts) else ""


def _get(segment, index: int):
    return segment[index] if len(segment) > index else None


def _identifier(value: str, what: str, patient: str | None = None) -> str:
    if not value:
        raise _fail(RejectCode.SCHEMA, f"{what} is empty", patient)
    if _ID_CLEAN.search(value) or len(value) > 64:
        raise _fail(RejectCode.SCHEMA, f"{what} {value[:70]!r} has characters or a length ctgwatch ids do not allow", patient)
    return value


def _timestamp(value: str, what: str, patient: str | None) -> float:
    try:
        dt = hl7.parse_datetime(value)
    except (ValueError, TypeError):
        raise _fail(RejectCode.SCHEMA, f"{what} {value!r} is not an HL7 timestamp", patient) from None
    if dt is None or dt.tzinfo is None:
        raise _fail(RejectCode.SCHEMA, f"{what} {value!r} has no UTC offset (e.g. +0000): refusing an ambiguous time", patient)
    return dt.timestamp()


def _number(text: str, what: str, patient: str | None) -> float:
    try:
        return float(text)
    except ValueError:
        raise _fail(RejectCode.SCHEMA, f"{what} value {text[:40]!r} is not a number", patient) from None


def map_oru(message: hl7.Message) -> Oru:
    """Map an ORU^R01; raises :class:`IngestError` with the reason for an AE/AR."""
    msh = message.segment("MSH")
    msg_type = _component(_get(msh, 9), 0), _component(_get(msh, 9), 1)
    control_id = str(_get(msh, 10) or "")
    if msg_type != ("ORU", "R01"):
        raise _fail(RejectCode.UNSUPPORTED, f"message type {'^'.join(msg_type)} is not ORU^R01")
    try:
        pid = message.segment("PID")
    except KeyError:
        raise _fail(RejectCode.SCHEMA, "no PID segment: the patient is unknown") from None
    patient = _identifier(_component(_get(pid, 3), 0), "PID-3 patient id")
    try:
        pv1 = message.segment("PV1")
        bed = _component(_get(pv1, 3), 2) or _component(_get(pv1, 3), 0)
    except KeyError:
        bed = ""
    bed = _identifier(bed, "PV1-3 bed", patient)
    sender = _component(_get(msh, 3), 0)

    waves: dict[str, tuple[list[float], float]] = {}
    vitals: dict[str, Any] = {}  # VitalsObservation fields: a Reading per vital sign
    devices: set[str] = set()
    unmapped: list[str] = []
    for obx in message.segments("OBX"):
        setid = str(_get(obx, 1) or "?")
        code, system = _component(_get(obx, 3), 0), _component(_get(obx, 3), 2).upper()
        value = str(_get(obx, 5) or "").strip()
        if not value:
            continue  # PCD-01 containers (MDS/VMD/channel rows) carry no value
        entry = CODE_TABLE.get((_SYSTEM_ALIASES.get(system, system), code))
        if entry is None:
            unmapped.append(f"OBX-{setid} {code}^{system}")
            continue
        unit = _component(_get(obx, 6), 0)
        if unit not in entry.units:
            raise _fail(RejectCode.UNSUPPORTED, f"OBX-{setid} {entry.description}: unit {unit!r} not accepted "
                        f"(expected one of {', '.join(u for u in entry.units if u)})", patient)
        when = _timestamp(_component(_get(obx, 14), 0), f"OBX-{setid} time", patient)
        device = _component(_get(obx, 18), 0)
        if device:
            devices.add(device)
        value_type = str(_get(obx, 2) or "")
        if entry.waveform:
            if value_type != "NA":
                raise _fail(RejectCode.SCHEMA, f"OBX-{setid} {entry.description} must be a 4 Hz numeric array "
                            f"(value type NA), got {value_type or 'none'}", patient)
            samples = [_number(s, f"OBX-{setid}", patient) for s in value.split("^")]
            if entry.field in waves:
                raise _fail(RejectCode.SCHEMA, f"OBX-{setid}: second {entry.field} waveform in one message", patient)
            waves[entry.field] = (samples, when)
        else:
            if value_type != "NM":
                raise _fail(RejectCode.SCHEMA, f"OBX-{setid} {entry.description} must be NM, got {value_type or 'none'}", patient)
            vitals[entry.field] = Reading(value=_number(value, f"OBX-{setid}", patient), ts=when)

    if len(devices) > 1:
        raise _fail(RejectCode.SCHEMA, f"observations from several devices in one message: {sorted(devices)}", patient)
    device = _identifier(next(iter(devices), sender), "device (OBX-18 or MSH-3)", patient)
    records: list[CtgPacket | VitalsObservation] = []
    try:
        if waves:
            if "fhr" not in waves or "uc" not in waves:
                raise _fail(RejectCode.SCHEMA, "a CTG message needs both the FHR and the UC waveform", patient)
            starts = {round(t, 3) for _, t in waves.values()}
            if len(starts) > 1:
                raise _fail(RejectCode.SCHEMA, "CTG waveforms in one message must start at the same time", patient)
            records.append(CtgPacket(
                patient_id=patient, bed_id=bed, device_id=device, start_ts=waves["fhr"][1],
                fhr=waves["fhr"][0], uc=waves["uc"][0], mhr=waves["mhr"][0] if "mhr" in waves else None,
            ))
        if vitals:
            records.append(VitalsObservation(patient_id=patient, bed_id=bed, device_id=device, **vitals))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        code = RejectCode.RANGE if first["type"] in ("physiological_range", "finite_number") else RejectCode.SCHEMA
        raise _fail(code, f"{loc + ': ' if loc else ''}{first['msg']}", patient) from None
    if not records:
        raise _fail(RejectCode.UNSUPPORTED, "no observation ctgwatch maps"
                    + (f" (unmapped: {', '.join(unmapped[:5])})" if unmapped else ""), patient)
    return Oru(control_id, records, unmapped)


def ack(message: hl7.Message | None, code: str, text: str = "", *, application: str = "CTGWATCH") -> str:
    """ACK with MSA-1 ``AA``/``AE``/``AR`` and, for errors, MSA-3 text and an ERR segment."""
    if message is None:  # nothing to answer to: a minimal ACK without a control id
        unknown = hl7.parse("MSH|^~\\&|UNKNOWN|UNKNOWN|||||ORU^R01|UNKNOWN|P|2.6")
        ack_msg = unknown.create_ack(code, application=application)
    else:
        ack_msg = message.create_ack(code, application=application)
    out = str(ack_msg).rstrip("\r")
    if text:
        escaped = ack_msg.escape(text[:200])
        out += f"|{escaped}"
        if code != "AA":
            out += f"\rERR|||207^Application internal error^HL70357|E||||{escaped}"
    return out
