"""Alert state in Redis: one record per alert, open-alert indexes, audit trail, escalation.

Lifecycle: ``raised`` -> ``acknowledged`` -> ``resolved``; an urgent or
emergency alert not acknowledged within its escalation time becomes
``escalated`` (and is re-notified every escalation period until someone
acknowledges it). Alerts never resolve themselves: when the condition ends the
record says so (``condition_active = 0``), a clinician resolves it.

De-duplication and hysteresis: one *episode* per (patient, kind) holds the
open alert. Findings of that kind update it (evidence, severity upwards)
instead of raising another. After a clinician resolves it, the same kind is
raised again only for evidence newer than what the resolved alert covered,
and not before ``suppress_after_resolve_s``.

Idempotent: the alert id is derived from (patient, kind, start of the first
finding), each change is one Redis transaction watched on the episode key, so
re-processing the same samples after a crash changes nothing and creates no
second alert.

Keys (prefix ``ctgw:``): ``alert:<id>`` hash; ``episode:<patient>:<kind>``
hash; ``open:ward:<ward>`` sorted set (id -> raised time); ``open:bed:<bed>``
set; ``alerts:patient:<patient>`` sorted set (every alert of the patient, for the hand-over);
``audit`` stream (every change: event, actor, time, snapshot);
``escalation`` sorted set (id -> due time). The audit stream is also the
outbox the relay publishes to the ``alerts`` topic.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline as RedisPipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT

from detectors.findings import Finding, Severity
from stream.alarms.handling import AlertHandling
from stream.core.redis_values import as_text, text_fields

AUDIT = "ctgw:audit"
#: The ward's audit stream keeps about this many newest events (each alert keeps its own trail whole).
AUDIT_KEEP = 100_000
ESCALATION = "ctgw:escalation"
AlertStatus = Literal["raised", "acknowledged", "escalated", "resolved"]
STATUSES: tuple[AlertStatus, ...] = ("raised", "acknowledged", "escalated", "resolved")


class AlertRecord(BaseModel):
    """One alert as the store keeps it (the ``alert:<id>`` hash), typed at the Redis boundary."""

    id: str
    patient_id: str
    bed_id: str
    ward_id: str
    kind: str  # the alarm (ctg_alarm, maternal_alarm, signal_alarm) or a finding kind
    severity: int  # detectors.findings.Severity
    severity_name: str
    status: AlertStatus
    raised_at: float
    updated_at: float
    escalations: int = 0
    first_start_s: float  # recording time of the first finding's start
    last_end_s: float  # recording time the evidence reaches
    condition_active: int = Field(description="1 while the condition is present; 0 once it ended (still open).")
    origin: str = "rules"  # rules or models
    rule: str
    sentence: str
    evidence: dict[str, Any] = Field(default_factory=dict)  # findings, reasons, models
    ack_by: str | None = None
    ack_at: float | None = None
    escalated_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    resolve_reason: str | None = None


class AuditEntry(BaseModel):
    """One change of an alert: who did what when, with its detail (a note, a reason, a bed move)."""

    audit_id: str  # "<alert id>:<n>" in an alert's trail, the stream entry id on the ward's stream
    alert_id: str
    event: str  # raised, severity_raised, moved, acknowledged, escalated, resolved
    actor: str  # a user name, or "ctgwatch"
    at: float
    detail: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Episode:
    """The de-duplication state of one (patient, kind) (the ``episode:<patient>:<kind>`` hash)."""

    alert_id: str | None  # the open alert of this kind, if any
    covered_until: float  # recording time the alerts of this kind have covered
    resolved_at: float  # when a clinician last resolved one (-inf: never)

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> Episode:
        fields = text_fields(raw)
        return cls(alert_id=fields.get("alert_id") or None,
                   covered_until=float(fields.get("covered_until", "-inf")),
                   resolved_at=float(fields.get("resolved_at", "-inf")))


class AlertError(Exception):
    """A lifecycle action that is not allowed (unknown alert, wrong state)."""


def alert_id(patient_id: str, kind: str, start_s: float) -> str:
    return hashlib.sha1(f"{patient_id}|{kind}|{round(start_s)}".encode()).hexdigest()[:20]


def _alert_key(aid: str) -> str:
    return f"ctgw:alert:{aid}"


def _episode_key(patient_id: str, kind: str) -> str:
    return f"ctgw:episode:{patient_id}:{kind}"


def _trail_key(aid: str) -> str:
    return f"ctgw:audit:alert:{aid}"


def _patient_key(patient_id: str) -> str:
    return f"ctgw:alerts:patient:{patient_id}"


def _decode(raw: Mapping[Any, Any]) -> AlertRecord:
    """The alert hash as its record (empty optional fields, such as an unset ``ack_by``, are None)."""
    fields: dict[str, Any] = {k: v for k, v in text_fields(raw).items()
                              if v != "" or AlertRecord.model_fields[k].is_required()}
    if "evidence" in fields:
        fields["evidence"] = json.loads(fields["evidence"])
    return AlertRecord.model_validate(fields)


def _encode(fields: Mapping[str, Any]) -> dict[EncodableT, EncodableT]:
    """Record fields as hash values (None is not written)."""
    return {k: json.dumps(v) if isinstance(v, dict) else v for k, v in fields.items() if v is not None}


class AlertStore:
    def __init__(self, redis: Redis, policy: AlertHandling = AlertHandling(),
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.policy = policy
        self.clock = clock

    async def get(self, aid: str) -> AlertRecord | None:
        h = await self.redis.hgetall(_alert_key(aid))
        return _decode(h) if h else None

    async def open_alerts(self, *, bed_id: str | None = None) -> list[AlertRecord]:
        if bed_id is not None:
            ids = sorted(as_text(m) for m in await self.redis.smembers(f"ctgw:open:bed:{bed_id}"))
        else:
            ids = [as_text(m) for m in await self.redis.zrange(f"ctgw:open:ward:{self.policy.ward_id}", 0, -1)]
        return await self._many(ids)

    async def patient_alerts(self, patient_id: str, since: float = float("-inf")) -> list[AlertRecord]:
        """Every alert of a patient raised since ``since``, open or resolved, oldest first (the hand-over)."""
        ids = [as_text(m) for m in await self.redis.zrangebyscore(_patient_key(patient_id), since, "+inf")]
        return await self._many(ids)

    async def _many(self, ids: list[str]) -> list[AlertRecord]:
        """The alerts of ``ids`` that exist, in that order."""
        alerts = [await self.get(i) for i in ids]
        return [a for a in alerts if a]

    async def apply(
        self,
        patient_id: str,
        bed_id: str,
        finding: Finding,
        *,
        origin: str = "rules",
        models: dict[str, Any] | None = None,
    ) -> tuple[str, str] | None:
        """Raise or update the alert for a finding: ('raised'|'updated'|'severity', id), or None if nothing changed."""
        if finding.severity < Severity.ADVISORY:
            return None
        episode = _episode_key(patient_id, finding.kind)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(episode)
                    ep = Episode.from_hash(await pipe.hgetall(episode))
                    outcome = await self._decide(pipe, ep, patient_id, bed_id, finding, origin, models)
                    if outcome is None:
                        await pipe.reset()
                        return None
                    await pipe.execute()
                    return outcome
                except WatchError:
                    continue

    async def _decide(self, pipe: RedisPipeline, ep: Episode, patient_id: str, bed_id: str, finding: Finding,
                      origin: str, models: dict[str, Any] | None) -> tuple[str, str] | None:
        """Queue on ``pipe`` (watched on the episode) what one finding changes: the open alert of its kind
        updated (evidence, severity upwards), or a new alert raised; None when nothing changes (evidence
        already covered, or the same condition within ``suppress_after_resolve_s`` of its resolution)."""
        now = self.clock()
        covered = ep.covered_until
        evidence_item = {**finding.to_dict(), "origin": origin}
        current = None
        if ep.alert_id:
            raw = await pipe.hgetall(_alert_key(ep.alert_id))
            current = _decode(raw) if raw else None
        if current is not None and current.status != "resolved":
            return self._update(pipe, current, patient_id, finding, evidence_item, covered, models, now)
        # No open alert of this kind: raise, unless this is the resolved episode again.
        if finding.end_s <= covered:
            return None
        if now - ep.resolved_at < self.policy.suppress_after_resolve_s:
            return None
        # After a resolution the same condition may still be on (a consolidated alarm keeps its start):
        # the new alert is named by where the resolved one's evidence ended, so it is a new record.
        aid = alert_id(patient_id, finding.kind, max(finding.start_s, covered))
        if await pipe.exists(_alert_key(aid)):
            return None  # already raised once for this very episode (replay after a crash)
        record = AlertRecord(
            id=aid, patient_id=patient_id, bed_id=bed_id, ward_id=self.policy.ward_id,
            kind=finding.kind, severity=int(finding.severity), severity_name=str(finding.severity),
            status="raised", raised_at=now, updated_at=now, escalations=0,
            first_start_s=finding.start_s, last_end_s=finding.end_s, condition_active=1,
            origin=origin, rule=finding.rule, sentence=finding.sentence,
            evidence={"findings": [evidence_item], "models": models or {},
                      **({"reasons": finding.values["reasons"]} if "reasons" in finding.values else {})},
        )
        pipe.multi()
        pipe.hset(_alert_key(aid), mapping=_encode(record.model_dump()))
        pipe.hset(_episode_key(patient_id, finding.kind), mapping={"alert_id": aid, "covered_until": finding.end_s})
        pipe.zadd(f"ctgw:open:ward:{self.policy.ward_id}", {aid: now})
        pipe.sadd(f"ctgw:open:bed:{bed_id}", aid)
        pipe.zadd(_patient_key(patient_id), {aid: now})
        self._audit(pipe, aid, "raised", "ctgwatch", now, {"kind": finding.kind, "severity": str(finding.severity)})
        self._schedule(pipe, aid, int(finding.severity), now)
        return "raised", aid

    def _update(self, pipe: RedisPipeline, current: AlertRecord, patient_id: str, finding: Finding,
                evidence_item: dict[str, Any], covered: float, models: dict[str, Any] | None,
                now: float) -> tuple[str, str] | None:
        """The open alert of the finding's kind takes its evidence; its severity only goes up."""
        if finding.end_s <= covered and finding.severity <= current.severity:
            return None  # nothing new
        evidence = current.evidence
        evidence["findings"] = (evidence["findings"] + [evidence_item])[-self.policy.evidence_keep :]
        if "reasons" in finding.values:  # a consolidated alarm: its current reasons, all of them
            evidence["reasons"] = finding.values["reasons"]
        if models is not None:
            evidence["models"] = models
        severity = max(current.severity, int(finding.severity))
        key = _alert_key(current.id)
        pipe.multi()
        pipe.hset(key, mapping=_encode({
            "severity": severity, "severity_name": str(Severity(severity)), "updated_at": now,
            "last_end_s": max(current.last_end_s, finding.end_s), "condition_active": 1,
            "sentence": finding.sentence if finding.severity >= current.severity else current.sentence,
            "evidence": evidence,
        }))
        if finding.severity >= current.severity:  # the rule goes with the sentence it explains
            pipe.hset(key, "rule", finding.rule)
        pipe.hset(_episode_key(patient_id, finding.kind), "covered_until", max(covered, finding.end_s))
        if severity > current.severity:
            self._audit(pipe, current.id, "severity_raised", "ctgwatch", now,
                        {"from": str(Severity(current.severity)), "to": str(Severity(severity))})
            self._schedule(pipe, current.id, severity, now)
            return "severity", current.id
        return "updated", current.id

    def _schedule(self, pipe: RedisPipeline, aid: str, severity: int, now: float) -> None:
        delay = self.policy.escalation_delay(severity)
        if delay is not None:
            pipe.zadd(ESCALATION, {aid: now + delay})

    def _audit(self, pipe: RedisPipeline, aid: str, event: str, actor: str, at: float, detail: dict[str, Any]) -> None:
        """One audit event: on the ward's stream (the newest ``AUDIT_KEEP`` kept) and in the alert's own
        trail (all of it, so an alert's history never depends on how busy the ward was)."""
        entry: dict[EncodableT, EncodableT] = {"alert_id": aid, "event": event, "actor": actor, "at": at,
                                               "detail": json.dumps(detail)}
        pipe.xadd(AUDIT, entry, maxlen=AUDIT_KEEP, approximate=True)
        pipe.rpush(_trail_key(aid), json.dumps(entry))

    async def move_patient(self, patient_id: str, bed_id: str) -> list[str]:
        """The patient is on ``bed_id`` now: their open alerts carry that bed (and are listed under it);
        returns the alerts moved. Audited, so the hand-over shows where an alarm was raised."""
        moved = []
        now = self.clock()
        for alert in await self.patient_alerts(patient_id):
            if alert.status == "resolved" or alert.bed_id == bed_id:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(_alert_key(alert.id), mapping={"bed_id": bed_id, "updated_at": now})
                pipe.srem(f"ctgw:open:bed:{alert.bed_id}", alert.id)
                pipe.sadd(f"ctgw:open:bed:{bed_id}", alert.id)
                self._audit(pipe, alert.id, "moved", "ctgwatch", now, {"from": alert.bed_id, "to": bed_id})
                await pipe.execute()
            moved.append(alert.id)
        return moved

    async def mark_cleared(self, patient_id: str, kind: str) -> None:
        """The condition is no longer present (the alert stays until a clinician resolves it)."""
        ep = await self.redis.hget(_episode_key(patient_id, kind), "alert_id")
        if ep:
            await self.redis.hset(_alert_key(as_text(ep)), "condition_active", 0)

    async def _transition(self, aid: str, actor: str, event: str, allowed_from: tuple[AlertStatus, ...],
                          changes: dict[str, Any], detail: dict[str, Any]) -> AlertRecord:
        key = _alert_key(aid)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    if not raw:
                        raise AlertError(f"no alert {aid}")
                    alert = _decode(raw)
                    if alert.status not in allowed_from:
                        raise AlertError(f"alert {aid} is {alert.status}; cannot {event.rstrip('d')}")
                    now = self.clock()
                    pipe.multi()
                    pipe.hset(key, mapping=_encode({**changes, "updated_at": now}))
                    self._audit(pipe, aid, event, actor, now, detail)
                    if event == "resolved":
                        pipe.zrem(f"ctgw:open:ward:{alert.ward_id}", aid)
                        pipe.srem(f"ctgw:open:bed:{alert.bed_id}", aid)
                        pipe.zrem(ESCALATION, aid)
                        pipe.hset(_episode_key(alert.patient_id, alert.kind),
                                  mapping={"alert_id": "", "resolved_at": now})
                    if event == "acknowledged":
                        pipe.zrem(ESCALATION, aid)
                    await pipe.execute()
                    return alert.model_copy(update={**changes, "updated_at": now})
                except WatchError:
                    continue

    async def acknowledge(self, aid: str, user: str, note: str = "") -> AlertRecord:
        now = self.clock()
        return await self._transition(aid, user, "acknowledged", ("raised", "escalated"),
                                      {"status": "acknowledged", "ack_by": user, "ack_at": now}, {"note": note})

    async def escalate(self, aid: str, user: str, reason: str = "") -> AlertRecord:
        now = self.clock()
        alert = await self.get(aid)
        count = (0 if alert is None else alert.escalations) + 1
        return await self._transition(aid, user, "escalated", ("raised", "acknowledged", "escalated"),
                                      {"status": "escalated", "escalated_at": now, "escalations": count},
                                      {"reason": reason, "count": count})

    async def resolve(self, aid: str, user: str, reason: str) -> AlertRecord:
        if not reason.strip():
            raise AlertError("a reason is required to resolve an alert")
        now = self.clock()
        return await self._transition(aid, user, "resolved", ("raised", "acknowledged", "escalated"),
                                      {"status": "resolved", "resolved_by": user, "resolved_at": now,
                                       "resolve_reason": reason}, {"reason": reason})

    async def run_escalations(self) -> list[str]:
        """Escalate every due alert nobody acknowledged; returns the ids escalated now."""
        now = self.clock()
        escalated = []
        for raw in await self.redis.zrangebyscore(ESCALATION, "-inf", now):
            aid = as_text(raw)
            if not await self.redis.zrem(ESCALATION, aid):
                continue  # another worker claimed it
            alert = await self.get(aid)
            if not alert or alert.status not in ("raised", "escalated"):
                continue
            delay = self.policy.escalation_delay(alert.severity)
            await self.escalate(aid, "ctgwatch", f"not acknowledged within {delay} s")
            if delay is not None:
                await self.redis.zadd(ESCALATION, {aid: now + delay})  # re-notify until acknowledged
            escalated.append(aid)
        return escalated

    async def audit_trail(self, aid: str | None = None, count: int = 1000) -> list[AuditEntry]:
        """An alert's whole trail (``aid``), or the ward's newest ``count`` events; oldest first either way."""
        if aid is not None:
            return [audit_entry(f"{aid}:{i}", json.loads(raw))
                    for i, raw in enumerate(await self.redis.lrange(_trail_key(aid), 0, -1))]
        newest = await self.redis.xrevrange(AUDIT, count=count)
        return [audit_entry(as_text(entry_id), text_fields(fields)) for entry_id, fields in reversed(newest or [])]


def audit_entry(audit_id: str, stored: Mapping[str, Any]) -> AuditEntry:
    """An audit event as stored (its detail a JSON text) as its typed entry."""
    return AuditEntry.model_validate({**stored, "audit_id": audit_id, "detail": json.loads(stored["detail"]),
                                      "at": float(stored["at"])})
