"""HL7 v2 over MLLP: ORU^R01 observations in, ACK/NAK out.

Framing (``0x0B`` message ``0x1C 0x0D``) is python-hl7's ``hl7.mllp``; each
message is answered on the same connection with:

- ``AA``: every mapped observation is on its topic;
- ``AE``: the content is wrong (range, missing channel, bad time, order...):
  the message is dead-lettered with the reason, do not resend it unchanged;
- ``AR``: refused as a whole: not HL7, not ORU^R01, unknown sending device,
  wrong shared secret, the device over its rate, or the gateway's outbox full
  (``retry later``: nothing was kept). HL7 v2's original acknowledgement mode
  has no "busy" code; ``AE`` would tell the sender its content is wrong.

Who may connect: with ``gateway_mllp_allow`` set, only those addresses; with
``gateway_mllp_secret`` set, only messages carrying it in MSH-8 (Security);
always only registered sending devices (MSH-3). Off loopback the gateway does
not start without an allow-list or a secret (MSH-3 alone is no credential).
Whatever arrives before a message authenticates (garbage, broken frames, an
unknown device, a missing secret) is counted and sampled (size, SHA-256, first
bytes), never stored whole; an authenticated device's bad message is
dead-lettered whole. A connection is
closed after ``gateway_mllp_idle_timeout_s`` without a message; bytes that do
not make a frame within ``gateway_mllp_frame_timeout_s`` get a NAK, and the
connection is closed.

A message with observations we do not map is accepted for the mapped ones
and a copy is dead-lettered (code ``unsupported``) naming the codes, so no
value disappears without a trace.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import hl7
from hl7.mllp import InvalidBlockError

from stream.core.errors import SetupError
from stream.core.metrics import GATEWAY_BACKPRESSURE, GATEWAY_RATE_LIMITED
from stream.core.schemas import CtgPacket, DeadLetter, RejectCode, VitalsObservation
from stream.core.validation import IngestError
from stream.gateway.devices import DeviceRegistry
from stream.gateway.hl7map import ack, map_oru, parse_message
from stream.gateway.intake import Intake
from stream.gateway.publisher import BrokerBusy

log = logging.getLogger("ctgwatch.mllp")
ENTRANCE = "mllp"


@dataclass(frozen=True)
class MllpPolicy:
    """Who may send over MLLP and how long a connection may wait (see the module doc)."""

    allow: tuple[IPv4Network | IPv6Network, ...] = ()
    secret: str | None = None
    idle_timeout_s: float = 300.0
    frame_timeout_s: float = 10.0

    @classmethod
    def of(cls, allow: list[str], secret: str | None, idle_timeout_s: float, frame_timeout_s: float) -> MllpPolicy:
        return cls(tuple(ip_network(a, strict=False) for a in allow), secret or None, idle_timeout_s, frame_timeout_s)

    def admits(self, address: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.allow)


class MllpHandler:
    def __init__(self, intake: Intake, registry: DeviceRegistry, *, encoding: str = "utf-8",
                 policy: MllpPolicy = MllpPolicy()) -> None:
        self.intake = intake
        self.registry = registry
        self.encoding = encoding
        self.policy = policy

    async def _refuse_sender(self, raw: bytes, reason: str, source: str) -> None:
        try:
            await self.intake.refuse_unauthenticated(raw, reason=reason, source=source, sender=source,
                                                     entrance=ENTRANCE)
        except BrokerBusy:
            GATEWAY_BACKPRESSURE.labels(ENTRANCE).inc()

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
        authenticated = False  # until a registered device (and the shared secret) is seen, input is a stranger's
        try:
            sender = self._authenticate(raw)  # from the MSH segment alone: a too-large message is judged too
            authenticated = True
            if len(raw) > self.intake.limits.max_message_bytes:
                raise IngestError(RejectCode.TOO_LARGE, f"{len(raw)} bytes exceeds {self.intake.limits.max_message_bytes}")
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise IngestError(RejectCode.MALFORMED, f"not {self.encoding} text: {exc}") from None
            message = parse_message(text.replace("\n", "\r").strip("\r"))
            if not self.intake.rate.allow(f"mllp:{sender}"):
                GATEWAY_RATE_LIMITED.labels(ENTRANCE).inc()
                return ack(message, "AR", f"device {sender} sends faster than {self.intake.rate.rate:g} "
                           "messages/s; nothing was kept, resend later")
            oru = map_oru(message)
            for record in oru.records:
                self.intake.check(record, None)
        except IngestError as err:
            if not authenticated:  # a stranger's input (garbage, unknown MSH-3, no secret): counted and sampled
                await self._refuse_sender(raw, f"{err.code.value}: {err.reason}", source)
                return ack(message, "AR", f"{err.code.value}: {err.reason}")
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
        items: list[tuple[bytes, CtgPacket | VitalsObservation | None, IngestError | None]] = [
            (raw, record, None) for record in oru.records]
        try:
            await self.intake.admit(items, source=source, entrance=ENTRANCE, device=None, extra_letters=extra)
        except BrokerBusy:
            GATEWAY_BACKPRESSURE.labels(ENTRANCE).inc()
            return ack(message, "AR", "broker busy, retry later")
        return ack(message, "AA", f"{len(oru.unmapped)} observation(s) not mapped" if oru.unmapped else "")

    def _authenticate(self, raw: bytes) -> str:
        """The registered sending device (MSH-3) of a message whose MSH-8 holds the secret (if one is set);
        IngestError(UNAUTHENTICATED or MALFORMED) otherwise. Reads only the first segment."""
        head = raw[:4096].replace(b"\n", b"\r").lstrip(b"\r").split(b"\r", 1)[0].decode(self.encoding, errors="replace")
        if not head.startswith("MSH") or len(head) < 8:
            raise IngestError(RejectCode.MALFORMED, "not an HL7 v2 message (no MSH segment first)")
        fields = head.split(head[3])  # MSH-1 is the field separator itself: fields[k] is MSH-(k+1)
        sender = fields[2].split("^")[0] if len(fields) > 2 else ""
        if not self.registry.is_registered(sender):
            raise IngestError(RejectCode.UNAUTHENTICATED, f"sending device {sender!r} (MSH-3) is not registered")
        security = fields[7] if len(fields) > 7 else ""
        if self.policy.secret is not None and not hmac.compare_digest(security.encode(), self.policy.secret.encode()):
            raise IngestError(RejectCode.UNAUTHENTICATED, "MSH-8 (Security) does not hold the shared secret")
        return sender

    async def _next_block(self, reader, writer, source: str) -> bytes | None:  # noqa: ANN001
        """The next framed message; None when the connection should close (idle, or no frame in time)."""
        idle_until = time.monotonic() + self.policy.idle_timeout_s
        while True:
            try:
                async with asyncio.timeout(self.policy.frame_timeout_s):
                    return await reader.readblock()  # readuntil: nothing is consumed if cancelled
            except TimeoutError:
                pending = bytes(getattr(reader, "_buffer", b""))
                if pending:  # bytes that never became a frame: say so, keep a sample, close
                    await self._refuse_sender(pending, f"no complete MLLP frame within "
                                              f"{self.policy.frame_timeout_s:g} s", source)
                    writer.writeblock(ack(None, "AR", "MLLP framing error: no complete frame (0x0B ... 0x1C 0x0D) "
                                          "in time").encode())
                    await writer.drain()
                    return None
                if time.monotonic() >= idle_until:
                    log.info("MLLP connection from %s closed after %.0f s idle", source, self.policy.idle_timeout_s)
                    return None

    async def on_connection(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        source = f"mllp:{peer[0]}" if peer else "mllp"
        if peer and not self.policy.admits(peer[0]):
            await self._refuse_sender(b"", f"address {peer[0]} is not in the MLLP allow-list", source)
            writer.close()
            return
        try:
            while True:
                try:
                    raw = await self._next_block(reader, writer, source)
                    if raw is None:
                        return
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():  # bytes before any authenticated message: a stranger's, sampled
                        await self._refuse_sender(exc.partial, "connection closed inside an MLLP frame "
                                                  "(no 0x1C 0x0D end)", source)
                    return
                except InvalidBlockError as exc:
                    await self._refuse_sender(b"", f"bytes outside an MLLP frame: {exc}"[:300], source)
                    writer.writeblock(ack(None, "AR", "MLLP framing error: frames start with 0x0B").encode())
                    await writer.drain()
                    continue
                except ValueError as exc:  # frame longer than the read limit: keep its head, then hang up
                    head = bytes(getattr(reader, "_buffer", b""))  # (the frame cannot be skipped reliably)
                    reason = f"MLLP frame larger than the read limit: {exc}"[:300]
                    try:
                        self._authenticate(head.lstrip(b"\x0b"))
                    except IngestError:
                        await self._refuse_sender(head, reason, source)
                    else:  # a known device's oversized message: its head is kept for the sender to trace
                        await self._store(head, RejectCode.TOO_LARGE, reason, source)
                    writer.writeblock(ack(None, "AR", "message too large").encode())
                    await writer.drain()
                    return
                response = await self.handle_block(raw, source)
                writer.writeblock(response.encode(self.encoding))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug must not take the listener down
            log.exception("MLLP connection from %s failed", source)
        finally:
            writer.close()


def require_mllp_authentication(host: str, policy: MllpPolicy) -> None:
    """Refuse to listen beyond loopback when MLLP senders would be trusted on their MSH-3 alone."""
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not policy.allow and policy.secret is None:
        raise SetupError(f"MLLP would listen on {host} and accept any peer that names a registered device (MSH-3)",
                         "set CTGWATCH_GATEWAY_MLLP_ALLOW (device networks, CIDR) or CTGWATCH_GATEWAY_MLLP_SECRET "
                         "(carried in MSH-8), or bind CTGWATCH_GATEWAY_HOST to 127.0.0.1")
