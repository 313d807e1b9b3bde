"""HL7 v2 over MLLP: ORU^R01 observations in, ACK/NAK out.

Framing (``0x0B`` message ``0x1C 0x0D``) is python-hl7's ``hl7.mllp``; each
message is answered on the same connection with:

- ``AA``: every mapped observation is on its topic;
- ``AE``: the content is wrong (range, missing channel, bad time, order...):
  the message is dead-lettered with the reason, do not resend it unchanged;
- ``AR``: refused as a whole: not HL7, not ORU^R01, unknown sending device, or
  the broker is not keeping up (``retry later``: nothing was kept).

A message with observations we do not map is accepted for the mapped ones
and a copy is dead-lettered (code ``unsupported``) naming the codes, so no
value disappears without a trace.
"""

from __future__ import annotations

import asyncio
import logging

import hl7
from hl7.mllp import InvalidBlockError

from stream.core.metrics import GATEWAY_BACKPRESSURE
from stream.core.schemas import DeadLetter, RejectCode
from stream.core.validation import IngestError
from stream.gateway.devices import DeviceRegistry
from stream.gateway.hl7map import ack, map_oru, parse_message
from stream.gateway.intake import Intake
from stream.gateway.publisher import BrokerBusy

log = logging.getLogger("ctgwatch.mllp")
ENTRANCE = "mllp"


class MllpHandler:
    def __init__(self, intake: Intake, registry: DeviceRegistry, *, encoding: str = "utf-8") -> None:
        self.intake = intake
        self.registry = registry
        self.encoding = encoding

    async def _store(self, raw: bytes, code: RejectCode, reason: str, source: str, patient: str | None = None) -> bool:
        try:
            await self.intake.refuse(raw, code=code, reason=reason, source=source, entrance=ENTRANCE, patient_id=patient)
            return True
        except BrokerBusy:
            GATEWAY_BACKPRESSURE.labels(ENTRANCE).inc()
            return False

    async def handle_block(self, raw: bytes, source: str) -> str:
        """One framed message in, the ACK text out (never raises for bad input)."""
        message: hl7.Message | None = None
        try:
            if len(raw) > self.intake.limits.max_message_bytes:
                raise IngestError(RejectCode.TOO_LARGE, f"{len(raw)} bytes exceeds {self.intake.limits.max_message_bytes}")
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise IngestError(RejectCode.MALFORMED, f"not {self.encoding} text: {exc}") from None
            message = parse_message(text.replace("\n", "\r").strip("\r"))
            sender = str(message.segment("MSH")[3]).split("^")[0]
            if not self.registry.is_registered(sender):
                raise IngestError(RejectCode.UNAUTHENTICATED, f"sending device {sender!r} (MSH-3) is not registered")
            oru = map_oru(message)
            for record in oru.records:
                self.intake.check(record, None)
        except IngestError as err:
            hard = err.code in (RejectCode.MALFORMED, RejectCode.UNSUPPORTED, RejectCode.UNAUTHENTICATED,
                                RejectCode.TOO_LARGE)
            if not await self._store(raw, err.code, err.reason, source, err.patient_id):
                return ack(message, "AR", "broker busy, retry later")
            return ack(message, "AR" if hard else "AE", f"{err.code.value}: {err.reason}")
        extra = []
        if oru.unmapped:
            extra.append(DeadLetter.of(
                raw, code=RejectCode.UNSUPPORTED, reason="observations not mapped (the rest was accepted): "
                + ", ".join(oru.unmapped[:20]), source=source, received_ts=self.intake.now(),
                patient_id=oru.records[0].patient_id,
            ))
        items = [(raw, record, None) for record in oru.records]
        try:
            await self.intake.admit(items, source=source, entrance=ENTRANCE, device=None, extra_letters=extra)
        except BrokerBusy:
            GATEWAY_BACKPRESSURE.labels(ENTRANCE).inc()
            return ack(message, "AR", "broker busy, retry later")
        return ack(message, "AA", f"{len(oru.unmapped)} observation(s) not mapped" if oru.unmapped else "")

    async def on_connection(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        source = f"mllp:{peer[0]}" if peer else "mllp"
        try:
            while True:
                try:
                    raw = await reader.readblock()
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        await self._store(exc.partial, RejectCode.MALFORMED,
                                          "connection closed inside an MLLP frame (no 0x1C 0x0D end)", source)
                    return
                except InvalidBlockError as exc:
                    await self._store(b"", RejectCode.MALFORMED, f"bytes outside an MLLP frame: {exc}"[:300], source)
                    writer.writeblock(ack(None, "AR", "MLLP framing error: frames start with 0x0B").encode())
                    await writer.drain()
                    continue
                except ValueError as exc:  # frame longer than the stream limit
                    await self._store(b"", RejectCode.TOO_LARGE, f"MLLP frame too large: {exc}"[:300], source)
                    writer.writeblock(ack(None, "AR", "message too large").encode())
                    await writer.drain()
                    continue
                response = await self.handle_block(raw, source)
                writer.writeblock(response.encode(self.encoding))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug must not take the listener down
            log.exception("MLLP connection from %s failed", source)
        finally:
            writer.close()
