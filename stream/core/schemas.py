"""Message schemas of ctgwatch, version 1 (documented in docs/SCHEMAS.md).

Three records travel on the topics, all UTF-8 JSON objects with a
``schema_version`` and a ``kind`` that tells them apart:

- :class:`CtgPacket` (``kind="ctg"``, topic ``ctg.packets``): a contiguous run
  of 4 Hz CTG samples from one monitor for one patient: FHR (0 = signal
  loss), UC and optionally the maternal heart rate channel.
- :class:`VitalsObservation` (``kind="vitals"``, topic ``vitals.observations``):
  maternal vital signs, each optional and each with its own timestamp.
- :class:`DeadLetter` (``kind="deadletter"``, topic ``ingest.deadletter``):
  anything rejected, with its raw bytes, the reason and where it came from.

Records are keyed by patient id (:func:`record_key`) so that one patient's
samples stay in order on one partition.

Why strict: these records come from devices and gateways we do not control.
A wrongly typed value (``"140"`` for 140), a NaN, an extra field or an
implausible number is refused rather than guessed at, and the refusal carries
a reason an engineer can act on. Types are checked in pydantic's strict mode.

Physiological ranges are what a monitor can report, not what is clinically
normal (the detectors judge that): an FHR of 230 bpm is implausible as a
fetal rate but a real monitor reading, so it is kept and judged later; a
value outside the device range is a device or transport fault.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

#: The FHR sensor: Doppler ultrasound, a fetal scalp electrode (fetal ECG), or not said.
FhrSource = Literal["ultrasound", "fecg", "unknown"]

SCHEMA_VERSION: Final = 1

#: CTG monitors (ultrasound and fetal ECG) report FHR and UC at 4 Hz; the
#: CTU-UHB database and every detector in ``detectors/`` use this rate.
CTG_FS_HZ = 4.0
#: The longest packet a producer may send: 60 s of 4 Hz samples. Longer runs
#: are split by the producer so that one packet never carries more than a
#: minute of a patient's trace (bounded memory, bounded alert delay).
MAX_PACKET_SAMPLES = 240

#: Device ranges. FHR: cardiotocographs display and report 50-240 bpm
#: (FIGO 2015 recommends a paper scale of 50-210; monitors such as the
#: Philips Avalon range to 240), 0 is the conventional signal-loss value.
FHR_RANGE_BPM = (50.0, 240.0)
#: Maternal heart rate channel (pulse oximetry / ECG on the CTG monitor).
MHR_RANGE_BPM = (30.0, 240.0)
#: UC: external tocodynamometry reports 0-100 relative units, intrauterine
#: pressure catheters 0-127 mmHg; both fit 0-127.
UC_RANGE = (0.0, 127.0)

#: Maternal vital-sign device ranges (measurable values, wide on purpose:
#: the MEOWS chart in ``detectors/thresholds.py`` decides what is abnormal).
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate": (20.0, 250.0),  # bpm
    "systolic_bp": (40.0, 300.0),  # mmHg
    "diastolic_bp": (15.0, 200.0),  # mmHg
    "respiratory_rate": (0.0, 80.0),  # breaths/min
    "spo2": (50.0, 100.0),  # %
    "temperature_c": (30.0, 45.0),  # degrees Celsius
}

Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", strict=True)
]
Timestamp = Annotated[float, Field(gt=0, description="Unix time in seconds (UTC).")]


class RejectCode(StrEnum):
    """Why a record was refused; stable strings for dashboards and metrics."""

    TOO_LARGE = "too_large"  # more bytes than the configured limit
    MALFORMED = "malformed"  # not UTF-8 JSON, not an object, not HL7
    SCHEMA = "schema"  # missing/extra field, wrong type, wrong size, bad id
    RANGE = "range"  # a value outside the device range, NaN or infinity
    CLOCK_SKEW = "clock_skew"  # timestamp too far in the future
    STALE = "stale"  # timestamp older than the accepted age
    OUT_OF_ORDER = "out_of_order"  # overlaps or precedes what the patient already sent
    UNAUTHENTICATED = "unauthenticated"  # no or wrong device token
    DEVICE_MISMATCH = "device_mismatch"  # token of one device, data claiming another
    UNSUPPORTED = "unsupported"  # e.g. an HL7 message type or code we do not map
    INTERNAL = "internal"  # valid input whose processing failed; kept for reprocessing


def _in_range(name: str, values: list[float], lo: float, hi: float, *, zero_is_loss: bool) -> None:
    for i, v in enumerate(values):
        if zero_is_loss and v == 0.0:
            continue
        if not (lo <= v <= hi):  # also catches NaN
            raise PydanticCustomError(
                "physiological_range",
                "{name}[{index}] = {value} is outside the device range {lo}-{hi}{loss}",
                {
                    "name": name,
                    "index": i,
                    "value": v,
                    "lo": lo,
                    "hi": hi,
                    "loss": " (0 = signal loss)" if zero_is_loss else "",
                },
            )


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    schema_version: Literal[1] = SCHEMA_VERSION


class CtgPacket(_Record):
    """A contiguous run of 4 Hz CTG samples from one monitor for one patient.

    Sample ``i`` of every channel was taken at ``start_ts + i / fs_hz``.
    """

    kind: Literal["ctg"] = "ctg"
    patient_id: Identifier
    bed_id: Identifier
    device_id: Identifier
    start_ts: Timestamp
    fs_hz: float = CTG_FS_HZ
    fhr: list[float] = Field(min_length=1, max_length=MAX_PACKET_SAMPLES, description="bpm; 0 = signal loss")
    uc: list[float] = Field(min_length=1, max_length=MAX_PACKET_SAMPLES)
    mhr: list[float] | None = Field(default=None, description="maternal heart rate, bpm; 0 = loss")
    fhr_source: FhrSource = "unknown"
    #: Per-sample signal quality as the monitor reports it (traffic light):
    #: 0 = no signal, 1 = poor, 2 = acceptable, 3 = good.
    fhr_quality: list[Annotated[int, Field(ge=0, le=3)]] | None = None

    @field_validator("fs_hz")
    @classmethod
    def _four_hz(cls, v: float) -> float:
        if v != CTG_FS_HZ:
            raise PydanticCustomError(
                "sampling_rate", "fs_hz must be {fs} (CTG monitors sample at 4 Hz), got {v}",
                {"fs": CTG_FS_HZ, "v": v},
            )
        return v

    @model_validator(mode="after")
    def _channels(self) -> CtgPacket:
        n = len(self.fhr)
        for name in ("uc", "mhr", "fhr_quality"):
            channel = getattr(self, name)
            if channel is not None and len(channel) != n:
                raise PydanticCustomError(
                    "channel_length", "{name} has {m} samples, fhr has {n}: channels must align",
                    {"name": name, "m": len(channel), "n": n},
                )
        _in_range("fhr", self.fhr, *FHR_RANGE_BPM, zero_is_loss=True)
        _in_range("uc", self.uc, *UC_RANGE, zero_is_loss=False)
        if self.mhr is not None:
            _in_range("mhr", self.mhr, *MHR_RANGE_BPM, zero_is_loss=True)
        return self

    @property
    def end_ts(self) -> float:
        """Time just after the last sample (start of the next packet if contiguous)."""
        return self.start_ts + len(self.fhr) / self.fs_hz


class Reading(BaseModel):
    """One measured value and when it was measured."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    value: float
    ts: Timestamp


class VitalsObservation(_Record):
    """Maternal vital signs for one patient; any may be missing, each has its own time."""

    kind: Literal["vitals"] = "vitals"
    patient_id: Identifier
    bed_id: Identifier
    device_id: Identifier
    heart_rate: Reading | None = None
    systolic_bp: Reading | None = None
    diastolic_bp: Reading | None = None
    respiratory_rate: Reading | None = None
    spo2: Reading | None = None
    temperature_c: Reading | None = None
    #: AVPU consciousness level, as charted (MEOWS uses it).
    avpu: Literal["A", "V", "P", "U"] | None = None
    avpu_ts: Timestamp | None = None

    @model_validator(mode="after")
    def _readings(self) -> VitalsObservation:
        present = self.readings()
        if not present and self.avpu is None:
            raise PydanticCustomError("empty_observation", "a vitals observation needs at least one reading", {})
        if (self.avpu is None) != (self.avpu_ts is None):
            raise PydanticCustomError("avpu_ts", "avpu and avpu_ts come together", {})
        for name, reading in present.items():
            lo, hi = VITAL_RANGES[name]
            _in_range(name, [reading.value], lo, hi, zero_is_loss=False)
        sbp, dbp = self.systolic_bp, self.diastolic_bp
        if sbp and dbp and dbp.value >= sbp.value:
            raise PydanticCustomError(
                "physiological_range", "diastolic_bp {d} is not below systolic_bp {s}",
                {"d": dbp.value, "s": sbp.value},
            )
        return self

    def readings(self) -> dict[str, Reading]:
        """The readings present, by name."""
        return {name: r for name in VITAL_RANGES if (r := getattr(self, name)) is not None}

    def timestamps(self) -> list[float]:
        ts = [r.ts for r in self.readings().values()]
        if self.avpu_ts is not None:
            ts.append(self.avpu_ts)
        return ts

    @property
    def observed_ts(self) -> float:
        """The latest time any value in this observation was measured."""
        return max(self.timestamps())


SignalRecord = Annotated[CtgPacket | VitalsObservation, Field(discriminator="kind")]
_SIGNAL_ADAPTER: TypeAdapter[CtgPacket | VitalsObservation] = TypeAdapter(SignalRecord)


class DeadLetter(_Record):
    """A refused input, kept whole: nothing is dropped silently."""

    kind: Literal["deadletter"] = "deadletter"
    code: RejectCode
    reason: str
    source: str = Field(description="where it came from, e.g. 'kafka:ctg.packets[3]@812', 'http:dev-7', 'mllp:10.0.0.5'")
    received_ts: Timestamp
    patient_id: str | None = Field(default=None, description="best-effort, for routing to the right bed")
    raw_b64: str
    raw_size: int = Field(ge=0, description="size of the input as received, in bytes")
    raw_truncated: bool = False

    @classmethod
    def of(
        cls,
        raw: bytes,
        *,
        code: RejectCode,
        reason: str,
        source: str,
        received_ts: float,
        patient_id: str | None = None,
        keep_bytes: int | None = None,
    ) -> DeadLetter:
        """Wrap raw bytes; ``keep_bytes`` caps what is stored of an oversized input."""
        kept = raw if keep_bytes is None else raw[:keep_bytes]
        return cls(
            code=code,
            reason=reason,
            source=source,
            received_ts=received_ts,
            patient_id=patient_id,
            raw_b64=base64.b64encode(kept).decode("ascii"),
            raw_size=len(raw),
            raw_truncated=len(kept) < len(raw),
        )

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.raw_b64)


class GroundTruth(_Record):
    """An event the simulator injected (the answer key for scoring; topic ``sim.groundtruth``)."""

    kind: Literal["groundtruth"] = "groundtruth"
    patient_id: Identifier
    bed_id: Identifier
    event: str = Field(description="e.g. prolonged_deceleration, bradycardia, maternal_haemorrhage")
    start_ts: Timestamp
    end_ts: Timestamp
    values: dict[str, float] = Field(default_factory=dict)
    scenario: str
    seed: int


AnyRecord = CtgPacket | VitalsObservation | DeadLetter | GroundTruth


def encode(record: AnyRecord) -> bytes:
    """The wire form: compact UTF-8 JSON."""
    return record.model_dump_json(exclude_none=True).encode("utf-8")


def decode_signal(raw: bytes | str) -> CtgPacket | VitalsObservation:
    """Parse and validate a CTG packet or vitals observation (strict).

    Raises ``pydantic.ValidationError``; :mod:`stream.core.validation` turns it into
    a reject code and a readable reason.
    """
    return _SIGNAL_ADAPTER.validate_json(raw, strict=True)


def decode_deadletter(raw: bytes | str) -> DeadLetter:
    return DeadLetter.model_validate_json(raw, strict=True)


#: Kafka header on a record re-published from the dead-letter topic (``ctgwatch deadletter replay``):
#: the worker stores it at its place in time instead of refusing it as out of order.
REPLAY_HEADER = "ctgwatch-replayed-from"


def record_key(record: AnyRecord) -> bytes:
    """Kafka key: the patient id, so one patient stays on one partition."""
    patient = getattr(record, "patient_id", None) or getattr(record, "source", None) or "unknown"
    return str(patient).encode("utf-8")

