"""HTTP ingest: batched JSON records from devices, authenticated per device.

``POST /v1/ingest`` with ``Authorization: Bearer <device token>`` and a body
that is one record or ``{"records": [record, ...]}`` (records as in
docs/SCHEMAS.md). Answers:

- 202 ``{"accepted": n}``: every record is on its topic;
- 422 with ``accepted`` (indices, published) and ``rejected`` (index, code,
  reason; each also dead-lettered): do not resend the accepted ones;
- 400 body is not JSON / not a record or batch (dead-lettered);
- 401 no or unknown token (counted; a few per sender a minute sampled as a
  dead letter with size, SHA-256 and first bytes, never the whole body);
  413 body over the size limit (dead-lettered, truncated to the limit);
- 429 with ``Retry-After``: this device exceeds its request rate; nothing
  was kept, resend later;
- 503 with ``Retry-After``: the gateway's outbox is full (the broker is away
  or not keeping up); nothing was kept, send the same batch again later.

202 means the records are in the gateway's outbox: they reach the broker in
order, and during a broker outage they are held and resent (``GET /health``
says how many are held and whether the broker is reachable).

``GET /health`` needs no token; everything else does.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stream.core.metrics import GATEWAY_BACKPRESSURE, GATEWAY_RATE_LIMITED
from stream.core.schemas import RejectCode
from stream.gateway.devices import DeviceRegistry
from stream.gateway.intake import Intake
from stream.gateway.publisher import BrokerBusy

ENTRANCE = "http"


def _busy(exc: BrokerBusy) -> JSONResponse:
    GATEWAY_BACKPRESSURE.labels(ENTRANCE).inc()
    return JSONResponse({"error": "busy", "detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


async def _read_limited(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes (+1 to know it was longer); True if it was."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[: limit + 1], True
    return b"".join(chunks), False


def create_http_app(intake: Intake, registry: DeviceRegistry) -> FastAPI:
    # No interactive API documents on a device-facing port: they answered anyone without a token. The
    # ingest API is documented in docs/SCHEMAS.md and docs/HL7_MAPPING.md.
    app = FastAPI(title="ctgwatch IoMT gateway", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    limit = intake.limits.max_message_bytes

    async def refuse(raw: bytes, code: RejectCode, reason: str, source: str, status: int, **headers: str) -> JSONResponse:
        try:
            await intake.refuse(raw, code=code, reason=reason, source=source, entrance=ENTRANCE)
        except BrokerBusy as exc:
            return _busy(exc)
        return JSONResponse({"error": code.value, "detail": reason}, status_code=status, headers=headers)

    @app.get("/health")
    async def health() -> dict:
        outbox = intake.publisher.outbox
        return {"status": "ok" if outbox.broker_up else "holding: broker unreachable",
                "awaiting_broker": outbox.held, "oldest_held_s": round(outbox.oldest_age_s(), 1),
                "broker_reachable": outbox.broker_up}

    @app.post("/v1/ingest")
    async def ingest(request: Request) -> JSONResponse:
        client = request.client.host if request.client else "unknown"
        raw, too_large = await _read_limited(request, limit)
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        device = registry.device_for(token)
        source = f"http:{client}" + (f":{device}" if device else "")
        if device is None:  # counted, and sampled (size, hash, first bytes), never stored whole
            try:
                await intake.refuse_unauthenticated(raw, reason="missing or unknown device token", source=source,
                                                    sender=client, entrance=ENTRANCE)
            except BrokerBusy as exc:
                return _busy(exc)
            return JSONResponse({"error": RejectCode.UNAUTHENTICATED.value, "detail": "missing or unknown device token"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if not intake.rate.allow(device):
            GATEWAY_RATE_LIMITED.labels(ENTRANCE).inc()
            return JSONResponse({"error": "rate_limited", "detail": f"device {device} sends faster than "
                                 f"{intake.rate.rate:g} requests/s; nothing was kept, resend later"},
                                status_code=429, headers={"Retry-After": "1"})
        if too_large:
            return await refuse(raw, RejectCode.TOO_LARGE, f"body exceeds {limit} bytes (batch fewer records)",
                                source, 413)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return await refuse(raw, RejectCode.MALFORMED, f"body is not JSON: {exc}"[:300], source, 400)
        if isinstance(body, dict) and "records" in body and set(body) == {"records"}:
            items = body["records"]
            if not isinstance(items, list) or not items:
                return await refuse(raw, RejectCode.SCHEMA, "'records' must be a non-empty list", source, 400)
        elif isinstance(body, dict):
            items = [body]
        else:
            return await refuse(raw, RejectCode.SCHEMA, "body must be a record or {\"records\": [...]}", source, 400)
        parsed = [intake.parse(json.dumps(item, allow_nan=True).encode()) for item in items]
        try:
            verdict = await intake.admit(parsed, source=source, entrance=ENTRANCE, device=device)
        except BrokerBusy as exc:
            return _busy(exc)
        if not verdict.rejected:
            return JSONResponse({"accepted": len(verdict.accepted)}, status_code=202)
        return JSONResponse(
            {
                "accepted": verdict.accepted,
                "rejected": [
                    {"index": i, "code": letter.code.value, "reason": letter.reason} for i, letter in verdict.rejected
                ],
            },
            status_code=422,
        )

    return app
