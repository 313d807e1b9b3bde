"""From untrusted bytes to a validated record, or a dead letter with a reason.

One path for every entrance (Kafka topics, the HTTP gateway, the MLLP
listener), so that a record is judged the same way wherever it comes in:

1. size (before parsing, so a huge input costs nothing to refuse),
2. schema and device ranges (:mod:`stream.core.schemas`, strict),
3. time: not too far in the future (clock skew), not older than the accepted
   age (a device whose clock reset to 1970, a replay of last week),
4. order per patient (:class:`OrderGuard`): a CTG packet may not overlap or
   precede what the patient already sent; vitals must move forward in time.

Pure apart from the guard's memory; ``now`` is an argument so tests can pin it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import ValidationError

from stream.core.schemas import (
    CtgPacket,
    DeadLetter,
    RejectCode,
    VitalsObservation,
    decode_signal,
)

SignalRecord = CtgPacket | VitalsObservation


@dataclass(frozen=True)
class IngestLimits:
    """Operational limits (from :class:`stream.core.settings.Settings`)."""

    max_message_bytes: int = 256 * 1024
    max_future_skew_s: float = 10.0
    max_age_s: float = 24 * 3600.0


class IngestError(Exception):
    """A refused input: a stable code, a reason for humans, the patient if known."""

    def __init__(self, code: RejectCode, reason: str, patient_id: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.patient_id = patient_id

    def dead_letter(self, raw: bytes, *, source: str, received_ts: float, keep_bytes: int | None = None) -> DeadLetter:
        return DeadLetter.of(
            raw,
            code=self.code,
            reason=self.reason,
            source=source,
            received_ts=received_ts,
            patient_id=self.patient_id,
            keep_bytes=keep_bytes,
        )


_RANGE_ERRORS = {"physiological_range", "finite_number", "greater_than", "less_than_equal", "greater_than_equal"}


def _summarise(exc: ValidationError, limit: int = 3) -> tuple[RejectCode, str]:
    """A short, specific reason from pydantic's errors (first few, with locations)."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"] if p not in ("ctg", "vitals"))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    types = {e["type"] for e in errors}
    if types & {"json_invalid", "json_type"}:
        code = RejectCode.MALFORMED
    elif types <= _RANGE_ERRORS:
        code = RejectCode.RANGE
    else:
        code = RejectCode.SCHEMA
    return code, "; ".join(parts) + more


def _patient_hint(raw: bytes) -> str | None:
    """The patient id of a refused record when it can be read, for routing."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    pid = obj.get("patient_id") if isinstance(obj, dict) else None
    return pid[:64] if isinstance(pid, str) else None


def decode_checked(raw: bytes, max_message_bytes: int) -> SignalRecord:
    """Size, schema and range checks (no time or order); raises :class:`IngestError`."""
    if len(raw) > max_message_bytes:
        raise IngestError(RejectCode.TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {max_message_bytes} bytes")
    try:
        return decode_signal(raw)
    except ValidationError as exc:
        code, reason = _summarise(exc)
        raise IngestError(code, reason, _patient_hint(raw)) from None
    except (ValueError, RecursionError) as exc:  # e.g. undecodable UTF-8 or pathological nesting
        raise IngestError(RejectCode.MALFORMED, f"not a JSON record: {exc}"[:300]) from None


def parse_signal(raw: bytes, limits: IngestLimits, *, now: float) -> SignalRecord:
    """Size, schema, ranges and time checks; raises :class:`IngestError`."""
    record = decode_checked(raw, limits.max_message_bytes)
    check_time(record, limits, now=now)
    return record


def check_time(record: SignalRecord, limits: IngestLimits, *, now: float) -> None:
    if isinstance(record, CtgPacket):
        first, last = record.start_ts, record.end_ts
    else:
        stamps = record.timestamps()
        first, last = min(stamps), max(stamps)
    if last > now + limits.max_future_skew_s:
        raise IngestError(
            RejectCode.CLOCK_SKEW,
            f"timestamp {last:.3f} is {last - now:.1f} s in the future (more than the "
            f"{limits.max_future_skew_s:g} s clock skew allowed): check the device clock",
            record.patient_id,
        )
    if first < now - limits.max_age_s:
        raise IngestError(
            RejectCode.STALE,
            f"timestamp {first:.3f} is {now - first:.0f} s old (older than the {limits.max_age_s:g} s accepted)",
            record.patient_id,
        )


class OrderGuard:
    """Per-patient time order: the last CTG sample end and the last vitals time.

    Bounded (least recently seen patients are forgotten beyond ``capacity``),
    so a flood of invented patient ids cannot exhaust memory; a forgotten
    patient's next packet is simply accepted. Half a sample period of overlap
    is tolerated (clock jitter between consecutive packets).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ctg_end: OrderedDict[str, float] = OrderedDict()
        self._vitals_ts: OrderedDict[str, float] = OrderedDict()

    def _remember(self, table: OrderedDict[str, float], patient: str, ts: float) -> None:
        table[patient] = ts
        table.move_to_end(patient)
        while len(table) > self.capacity:
            table.popitem(last=False)

    def check(self, record: SignalRecord) -> None:
        """Raise :class:`IngestError` if out of order (does not remember it)."""
        pid = record.patient_id
        if isinstance(record, CtgPacket):
            last_end = self._ctg_end.get(pid)
            tolerance = 0.5 / record.fs_hz
            if last_end is not None and record.start_ts < last_end - tolerance:
                raise IngestError(
                    RejectCode.OUT_OF_ORDER,
                    f"CTG packet starts at {record.start_ts:.3f}, before the end of the samples "
                    f"already received for {pid} ({last_end:.3f}): duplicate or out of order",
                    pid,
                )
        else:
            last = self._vitals_ts.get(pid)
            if last is not None and record.observed_ts <= last:
                raise IngestError(
                    RejectCode.OUT_OF_ORDER,
                    f"vitals at {record.observed_ts:.3f} are not newer than the last received for "
                    f"{pid} ({last:.3f}): duplicate or out of order",
                    pid,
                )

    def _table(self, record: SignalRecord) -> OrderedDict[str, float]:
        return self._ctg_end if isinstance(record, CtgPacket) else self._vitals_ts

    def accept(self, record: SignalRecord) -> float | None:
        """Remember an accepted record; returns what it replaced (for :meth:`undo`)."""
        table = self._table(record)
        previous = table.get(record.patient_id)
        ts = record.end_ts if isinstance(record, CtgPacket) else record.observed_ts
        self._remember(table, record.patient_id, ts)
        return previous

    def undo(self, record: SignalRecord, previous: float | None) -> None:
        """Forget an accepted record again (its publish failed, the sender will retry)."""
        table = self._table(record)
        if previous is None:
            table.pop(record.patient_id, None)
        else:
            table[record.patient_id] = previous


class Validator:
    """The whole ingest judgement with per-patient order memory."""

    def __init__(self, limits: IngestLimits, guard: OrderGuard | None = None) -> None:
        self.limits = limits
        self.guard = guard or OrderGuard()

    def validate(self, raw: bytes, *, now: float) -> SignalRecord:
        record = parse_signal(raw, self.limits, now=now)
        self.guard.check(record)
        self.guard.accept(record)
        return record

    def judge(self, raw: bytes, *, source: str, now: float) -> SignalRecord | DeadLetter:
        """The record, or the dead letter to publish in its place (never raises for bad input)."""
        try:
            return self.validate(raw, now=now)
        except IngestError as err:
            return err.dead_letter(raw, source=source, received_ts=now, keep_bytes=self.limits.max_message_bytes)
