"""The gateway's judgement of a batch: validate, bind to the device, publish or dead-letter.

Shared by the HTTP endpoint and the MLLP listener so both refuse the same
things for the same reasons. Per-patient order is remembered only once the
broker has acknowledged, so a batch refused for back-pressure can be sent
again unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stream.core.metrics import DEAD_LETTERS, GATEWAY_REFUSED, RECORDS_IN
from stream.core.schemas import DeadLetter, RejectCode
from stream.core.validation import IngestError, IngestLimits, OrderGuard, SignalRecord, check_time, decode_checked
from stream.gateway.guard import DeviceRateLimit, RefusalSampler, sample_of
from stream.gateway.publisher import BrokerBusy, IngestPublisher


@dataclass
class Verdict:
    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, DeadLetter]] = field(default_factory=list)


class Intake:
    def __init__(
        self, limits: IngestLimits, publisher: IngestPublisher, *, clock: Callable[[], float] = time.time,
        sampler: RefusalSampler | None = None, rate: DeviceRateLimit | None = None, sample_bytes: int = 256,
    ) -> None:
        self.limits = limits
        self.publisher = publisher
        self.guard = OrderGuard()
        self.clock = clock
        self.sampler = sampler or RefusalSampler(per_min=30)
        self.rate = rate or DeviceRateLimit(rate_per_s=20.0, burst=200)
        self.sample_bytes = sample_bytes

    def now(self) -> float:
        return self.clock()

    async def refuse(
        self, raw: bytes, *, code: RejectCode, reason: str, source: str, entrance: str, patient_id: str | None = None
    ) -> None:
        """Dead-letter one refused input whole (raises :class:`BrokerBusy` if the broker cannot take it)."""
        letter = DeadLetter.of(raw, code=code, reason=reason, source=source, received_ts=self.now(),
                               patient_id=patient_id, keep_bytes=self.limits.max_message_bytes)
        await self.publisher.publish([letter])
        DEAD_LETTERS.labels(entrance, letter.code.value).inc()

    async def refuse_unauthenticated(self, raw: bytes, *, reason: str, source: str, sender: str,
                                     entrance: str) -> bool:
        """Count an input from a sender we do not know; keep a sample of it now and then.

        Not the body: its size, SHA-256 and first bytes (see :mod:`stream.gateway.guard`).
        Returns True if a sample was dead-lettered.
        """
        sampled = self.sampler.take(sender)
        GATEWAY_REFUSED.labels(entrance, str(sampled).lower()).inc()
        if not sampled:
            return False
        head, description = sample_of(raw, self.sample_bytes)
        letter = DeadLetter.of(head, code=RejectCode.UNAUTHENTICATED, reason=f"{reason} (sample: {description})",
                               source=source, received_ts=self.now())
        letter = letter.model_copy(update={"raw_size": len(raw), "raw_truncated": len(head) < len(raw)})
        await self.publisher.publish([letter])
        DEAD_LETTERS.labels(entrance, letter.code.value).inc()
        return True

    def check(self, record: SignalRecord, device: str | None) -> None:
        if device is not None and record.device_id != device:
            raise IngestError(
                RejectCode.DEVICE_MISMATCH,
                f"record claims device {record.device_id!r} but the token belongs to {device!r}",
                record.patient_id,
            )
        check_time(record, self.limits, now=self.now())
        self.guard.check(record)

    async def admit(
        self,
        items: list[tuple[bytes, SignalRecord | None, IngestError | None]],
        *,
        source: str,
        entrance: str,
        device: str | None,
        extra_letters: list[DeadLetter] | None = None,
    ) -> Verdict:
        """Judge each (raw, record-or-None, error-or-None) item and publish in one go.

        Raises :class:`BrokerBusy` (nothing remembered, the sender retries the whole batch).
        """
        now = self.now()
        verdict = Verdict()
        good: list[SignalRecord] = []
        undo: list[tuple[SignalRecord, float | None]] = []
        for index, (raw, record, error) in enumerate(items):
            try:
                if error is not None:
                    raise error
                assert record is not None
                self.check(record, device)
                undo.append((record, self.guard.accept(record)))
                good.append(record)
                verdict.accepted.append(index)
            except IngestError as err:
                letter = err.dead_letter(raw, source=source, received_ts=now, keep_bytes=self.limits.max_message_bytes)
                verdict.rejected.append((index, letter))
        letters = [letter for _, letter in verdict.rejected] + list(extra_letters or [])
        try:
            await self.publisher.publish([*good, *letters])
        except BrokerBusy:
            for record, previous in reversed(undo):
                self.guard.undo(record, previous)
            raise
        for record in good:
            RECORDS_IN.labels(entrance, record.kind).inc()
        for letter in letters:
            DEAD_LETTERS.labels(entrance, letter.code.value).inc()
        return verdict

    def parse(self, raw: bytes) -> tuple[bytes, SignalRecord | None, IngestError | None]:
        """Schema-parse one JSON record without the time and order checks (those happen in admit)."""
        try:
            return raw, decode_checked(raw, self.limits.max_message_bytes), None
        except IngestError as err:
            return raw, None, err
