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
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from detectors.findings import Finding, Severity
from stream.core.alert_handling import AlertHandling

AUDIT = "ctgw:audit"
#: The ward's audit stream keeps about this many newest events (each alert keeps its own trail whole).
AUDIT_KEEP = 100_000
ESCALATION = "ctgw:escalation"
STATUSES = ("raised", "acknowledged", "escalated", "resolved")


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


def _decode(h: dict) -> dict[str, Any]:
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in h.items()}
    for f in ("severity", "escalations", "condition_active"):
        if f in d:
            d[f] = int(d[f])
    for f in ("raised_at", "updated_at", "ack_at", "escalated_at", "resolved_at", "first_start_s", "last_end_s"):
        if d.get(f):
            d[f] = float(d[f])
    if "evidence" in d:
        d["evidence"] = json.loads(d["evidence"])
    return d


class AlertStore:
    def __init__(self, redis: Redis, policy: AlertHandling = AlertHandling(), clock=time.time) -> None:
        self.redis = redis
        self.policy = policy
        self.clock = clock

    async def get(self, aid: str) -> dict[str, Any] | None:
        h = await self.redis.hgetall(_alert_key(aid))
        return _decode(h) if h else None

    async def open_alerts(self, *, bed_id: str | None = None) -> list[dict[str, Any]]:
        if bed_id is not None:
            ids = sorted(m.decode() for m in await self.redis.smembers(f"ctgw:open:bed:{bed_id}"))
        else:
            ids = [m.decode() for m in await self.redis.zrange(f"ctgw:open:ward:{self.policy.ward_id}", 0, -1)]
        return await self._many(ids)

    async def patient_alerts(self, patient_id: str, since: float = float("-inf")) -> list[dict[str, Any]]:
        """Every alert of a patient raised since ``since``, open or resolved, oldest first (the hand-over)."""
        ids = [m.decode() for m in await self.redis.zrangebyscore(_patient_key(patient_id), since, "+inf")]
        return await self._many(ids)

    async def _many(self, ids: list[str]) -> list[dict[str, Any]]:
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
                    ep = {k.decode(): v.decode() for k, v in (await pipe.hgetall(episode)).items()}
                    outcome = await self._decide(pipe, ep, patient_id, bed_id, finding, origin, models)
                    if outcome is None:
                        await pipe.reset()
                        return None
                    await pipe.execute()
                    return outcome
                except WatchError:
                    continue

    async def _decide(self, pipe, ep, patient_id, bed_id, finding: Finding, origin, models):
        now = self.clock()
        covered = float(ep.get("covered_until", "-inf"))
        evidence_item = {**finding.to_dict(), "origin": origin}
        open_id = ep.get("alert_id") or None
        if open_id:
            current = await pipe.hgetall(_alert_key(open_id))
            current = _decode(current) if current else None
        else:
            current = None
        if current and current["status"] != "resolved":
            if finding.end_s <= covered and finding.severity <= current["severity"]:
                return None  # nothing new
            evidence = current["evidence"]
            evidence["findings"] = (evidence["findings"] + [evidence_item])[-self.policy.evidence_keep :]
            if "reasons" in finding.values:  # a consolidated alarm: its current reasons, all of them
                evidence["reasons"] = finding.values["reasons"]
            if models is not None:
                evidence["models"] = models
            severity = max(current["severity"], int(finding.severity))
            pipe.multi()
            pipe.hset(_alert_key(open_id), mapping={
                "severity": severity, "severity_name": str(Severity(severity)), "updated_at": now,
                "last_end_s": max(current["last_end_s"], finding.end_s), "condition_active": 1,
                "sentence": finding.sentence if finding.severity >= current["severity"] else current["sentence"],
                "evidence": json.dumps(evidence),
            })
            if finding.severity >= current["severity"]:  # the rule goes with the sentence it explains
                pipe.hset(_alert_key(open_id), "rule", finding.rule)
            pipe.hset(_episode_key(patient_id, finding.kind), "covered_until", max(covered, finding.end_s))
            if severity > current["severity"]:
                self._audit(pipe, open_id, "severity_raised", "ctgwatch", now,
                            {"from": str(Severity(current["severity"])), "to": str(Severity(severity))})
                self._schedule(pipe, open_id, severity, now)
                return "severity", open_id
            return "updated", open_id
        # No open alert of this kind: raise, unless this is the resolved episode again.
        if finding.end_s <= covered:
            return None
        resolved_at = float(ep.get("resolved_at", "-inf"))
        if now - resolved_at < self.policy.suppress_after_resolve_s:
            return None
        # After a resolution the same condition may still be on (a consolidated alarm keeps its start):
        # the new alert is named by where the resolved one's evidence ended, so it is a new record.
        aid = alert_id(patient_id, finding.kind, max(finding.start_s, covered))
        if await pipe.exists(_alert_key(aid)):
            return None  # already raised once for this very episode (replay after a crash)
        record = {
            "id": aid, "patient_id": patient_id, "bed_id": bed_id, "ward_id": self.policy.ward_id,
            "kind": finding.kind, "severity": int(finding.severity), "severity_name": str(finding.severity),
            "status": "raised", "raised_at": now, "updated_at": now, "escalations": 0,
            "first_start_s": finding.start_s, "last_end_s": finding.end_s, "condition_active": 1,
            "origin": origin, "rule": finding.rule, "sentence": finding.sentence,
            "evidence": json.dumps({"findings": [evidence_item], "models": models or {},
                                    **({"reasons": finding.values["reasons"]} if "reasons" in finding.values else {})}),
        }
        pipe.multi()
        pipe.hset(_alert_key(aid), mapping=record)
        pipe.hset(_episode_key(patient_id, finding.kind), mapping={"alert_id": aid, "covered_until": finding.end_s})
        pipe.zadd(f"ctgw:open:ward:{self.policy.ward_id}", {aid: now})
        pipe.sadd(f"ctgw:open:bed:{bed_id}", aid)
        pipe.zadd(_patient_key(patient_id), {aid: now})
        self._audit(pipe, aid, "raised", "ctgwatch", now, {"kind": finding.kind, "severity": str(finding.severity)})
        self._schedule(pipe, aid, int(finding.severity), now)
        return "raised", aid

    def _schedule(self, pipe, aid: str, severity: int, now: float) -> None:
        delay = self.policy.escalation_delay(severity)
        if delay is not None:
            pipe.zadd(ESCALATION, {aid: now + delay})

    def _audit(self, pipe, aid: str, event: str, actor: str, at: float, detail: dict) -> None:
        """One audit event: on the ward's stream (the newest ``AUDIT_KEEP`` kept) and in the alert's own
        trail (all of it, so an alert's history never depends on how busy the ward was)."""
        entry = {"alert_id": aid, "event": event, "actor": actor, "at": at, "detail": json.dumps(detail)}
        pipe.xadd(AUDIT, entry, maxlen=AUDIT_KEEP, approximate=True)
        pipe.rpush(_trail_key(aid), json.dumps(entry))

    async def move_patient(self, patient_id: str, bed_id: str) -> list[str]:
        """The patient is on ``bed_id`` now: their open alerts carry that bed (and are listed under it);
        returns the alerts moved. Audited, so the hand-over shows where an alarm was raised."""
        moved = []
        now = self.clock()
        for alert in await self.patient_alerts(patient_id):
            if alert["status"] == "resolved" or alert["bed_id"] == bed_id:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(_alert_key(alert["id"]), mapping={"bed_id": bed_id, "updated_at": now})
                pipe.srem(f"ctgw:open:bed:{alert['bed_id']}", alert["id"])
                pipe.sadd(f"ctgw:open:bed:{bed_id}", alert["id"])
                self._audit(pipe, alert["id"], "moved", "ctgwatch", now, {"from": alert["bed_id"], "to": bed_id})
                await pipe.execute()
            moved.append(alert["id"])
        return moved

    async def mark_cleared(self, patient_id: str, kind: str) -> None:
        """The condition is no longer present (the alert stays until a clinician resolves it)."""
        ep = await self.redis.hget(_episode_key(patient_id, kind), "alert_id")
        if ep:
            await self.redis.hset(_alert_key(ep.decode()), "condition_active", 0)

    async def _transition(self, aid: str, actor: str, event: str, allowed_from: tuple[str, ...],
                          changes: dict[str, Any], detail: dict) -> dict[str, Any]:
        key = _alert_key(aid)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    if not raw:
                        raise AlertError(f"no alert {aid}")
                    alert = _decode(raw)
                    if alert["status"] not in allowed_from:
                        raise AlertError(f"alert {aid} is {alert['status']}; cannot {event.rstrip('d')}")
                    now = self.clock()
                    pipe.multi()
                    pipe.hset(key, mapping={**changes, "updated_at": now})
                    self._audit(pipe, aid, event, actor, now, detail)
                    if event == "resolved":
                        pipe.zrem(f"ctgw:open:ward:{alert['ward_id']}", aid)
                        pipe.srem(f"ctgw:open:bed:{alert['bed_id']}", aid)
                        pipe.zrem(ESCALATION, aid)
                        pipe.hset(_episode_key(alert["patient_id"], alert["kind"]),
                                  mapping={"alert_id": "", "resolved_at": now})
                    if event == "acknowledged":
                        pipe.zrem(ESCALATION, aid)
                    await pipe.execute()
                    return {**alert, **changes, "updated_at": now}
                except WatchError:
                    continue

    async def acknowledge(self, aid: str, user: str, note: str = "") -> dict[str, Any]:
        now = self.clock()
        return await self._transition(aid, user, "acknowledged", ("raised", "escalated"),
                                      {"status": "acknowledged", "ack_by": user, "ack_at": now}, {"note": note})

    async def escalate(self, aid: str, user: str, reason: str = "") -> dict[str, Any]:
        now = self.clock()
        alert = await self.get(aid)
        count = (alert or {}).get("escalations", 0) + 1
        return await self._transition(aid, user, "escalated", ("raised", "acknowledged", "escalated"),
                                      {"status": "escalated", "escalated_at": now, "escalations": count},
                                      {"reason": reason, "count": count})

    async def resolve(self, aid: str, user: str, reason: str) -> dict[str, Any]:
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
            aid = raw.decode()
            if not await self.redis.zrem(ESCALATION, aid):
                continue  # another worker claimed it
            alert = await self.get(aid)
            if not alert or alert["status"] not in ("raised", "escalated"):
                continue
            await self.escalate(aid, "ctgwatch", f"not acknowledged within {self.policy.escalation_delay(alert['severity'])} s")
            delay = self.policy.escalation_delay(alert["severity"])
            if delay is not None:
                await self.redis.zadd(ESCALATION, {aid: now + delay})  # re-notify until acknowledged
            escalated.append(aid)
        return escalated

    async def audit_trail(self, aid: str | None = None, count: int = 1000) -> list[dict[str, Any]]:
        """An alert's whole trail (``aid``), or the ward's newest ``count`` events; oldest first either way."""
        if aid is not None:
            out = []
            for i, raw in enumerate(await self.redis.lrange(_trail_key(aid), 0, -1)):
                d = json.loads(raw)
                out.append({**d, "audit_id": f"{aid}:{i}", "detail": json.loads(d["detail"]), "at": float(d["at"])})
            return out
        newest = await self.redis.xrevrange(AUDIT, count=count)
        out = []
        for entry_id, fields in reversed(newest):
            d = {k.decode(): v.decode() for k, v in fields.items()}
            out.append({**d, "audit_id": entry_id.decode(), "detail": json.loads(d["detail"]), "at": float(d["at"])})
        return out
