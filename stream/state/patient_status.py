"""What the ward sees of one patient: the only module that reads or writes ``ctgw:patient:<id>``.

The worker writes it (bed on every packet, the FIGO analysis every 15 s with
the events and not-fetal stretches it found, MEOWS after every vitals
observation, model scores every 60 s); the nurse station and the CLI read it.
The bed view therefore draws exactly what the worker analysed, and the tile
and the bed view can never show two different CTG classes.

Every field is stored as JSON in one Redis hash, so reading back needs no
hand-kept list of numeric fields: :class:`PatientStatus` validates it.
The ward index ``ctgw:patients:<ward>`` (patient -> newest recording time)
lists the patients a ward shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.typing import EncodableT

from detectors.ctg import CtgAnalysis
from detectors.runs import runs
from stream.core.redis_values import as_text, text_fields


class TraceMark(BaseModel):
    """A stretch drawn on the trace: an event (acceleration, deceleration, contraction) or a not-fetal span."""

    kind: str
    start: float
    end: float


class RiskPoint(BaseModel):
    """The acidaemia-risk LSTM's probability of umbilical-artery pH < 7.05 at a recording time."""

    t: float
    p: float


#: The risk trend keeps one point per 5 min for 12 h: enough for the bed view's course, small in Redis.
RISK_STEP_S = 300.0
RISK_KEEP_S = 12 * 3600.0


def extend_risk_trend(trend: list[RiskPoint], t: float, p: float) -> list[RiskPoint]:
    """``trend`` with the point (t, p): a new point every ``RISK_STEP_S``, else the last one updated."""
    kept = [x for x in trend if t - x.t <= RISK_KEEP_S and x.t <= t]
    if kept and t - kept[-1].t < RISK_STEP_S:
        kept[-1] = RiskPoint(t=kept[-1].t, p=p)
    else:
        kept.append(RiskPoint(t=t, p=p))
    return kept


class ModelError(BaseModel):
    """The autoencoder's per-second reconstruction error over its last window (where it is abnormal)."""

    model: str
    t0: float
    threshold: float
    error: list[float]


class NoticeView(BaseModel):
    """An information signal on the tile: no acknowledgement, gone when its condition ends."""

    kind: str
    problem: str
    sentence: str
    since: float
    qualifying: bool = Field(default=False, description="An alarm condition still within its qualification time.")


class PatientStatus(BaseModel):
    """One patient's current state as the worker last wrote it."""

    patient_id: str
    bed_id: str = "?"
    t_end: float | None = Field(default=None, description="Newest recording time analysed (epoch seconds).")
    classification: str | None = Field(default=None, description="FIGO 2015 class of the last analysis.")
    reasons: list[str] = Field(default_factory=list)
    quality: str | None = None
    baseline_bpm: float | None = None
    fhr_now: float | None = None
    analysed_at: float | None = None
    analysis_t0: float | None = Field(default=None, description="Start of the history the last analysis covered.")
    events: list[TraceMark] = Field(default_factory=list)
    not_fetal: list[TraceMark] = Field(default_factory=list)
    meows_red: int | None = None
    meows_yellow: int | None = None
    vitals_ts: float | None = None
    models: str | None = None
    model_evidence: dict[str, Any] | None = None
    model_error: ModelError | None = None
    risk_trend: list[RiskPoint] = Field(default_factory=list, description=(
        "Acidaemia risk (pH < 7.05) from the last hour, one point per 5 min: evidence and a trend, never an alarm."))
    notices: list[NoticeView] = Field(default_factory=list)
    last_packet_at: float | None = Field(default=None, description="Wall time the worker last stored a packet of this bed.")


def analysis_marks(analysis: CtgAnalysis) -> tuple[list[TraceMark], list[TraceMark]]:
    """The events and the not-fetal stretches of an analysis, on the analysis' clock.

    Not-fetal stretches are what the signal-quality step judged not to be the
    fetal heart (the mother's rate, halving/doubling): drawn over the trace so a
    clinician sees what the analysis left out and why.
    """
    t0, fs = analysis.t0, analysis.quality.fs
    events = [TraceMark(kind="acceleration", start=t0 + e.start, end=t0 + e.end) for e in analysis.accelerations]
    events += [TraceMark(kind=f"{d.kind}_deceleration", start=t0 + d.excursion.start, end=t0 + d.excursion.end)
               for d in analysis.decelerations]
    events += [TraceMark(kind="contraction", start=t0 + c.onset, end=t0 + c.end) for c in analysis.contractions]
    not_fetal = [TraceMark(kind=kind, start=t0 + a / fs, end=t0 + b / fs)
                 for kind, mask in (("maternal_hr_capture", analysis.quality.maternal),
                                    ("halving_doubling", analysis.quality.ratio_error),
                                    ("false_signal", analysis.quality.model_false))
                 for a, b in runs(mask)]
    return events, not_fetal


def merge_marks(previous: list[TraceMark], new: list[TraceMark], since: float, keep_from: float) -> list[TraceMark]:
    """The new analysis' marks, plus the earlier ones that began before it did (still within ``keep_from``).

    The analysis covers the last 30 min; the bed view scrolls further back, so
    marks of earlier analyses are kept for the part the new one no longer sees.
    An event under way at the new window's start is kept as the earlier
    analysis saw it whole; the new analysis sees only its clipped tail, which
    is dropped (else the event would shrink, shift and vanish as the window slides).
    """
    older = [m for m in previous if m.start < since and m.end >= keep_from]
    fresh = [n for n in new if not any(o.kind == n.kind and o.start < n.end and n.start < o.end for o in older)]
    return sorted(older + fresh, key=lambda m: (m.start, m.kind))


def status_key(patient_id: str) -> str:
    return f"ctgw:patient:{patient_id}"


def ward_key(ward_id: str) -> str:
    return f"ctgw:patients:{ward_id}"


def encode_status_value(value: Any) -> str:
    """One value of the status hash as it is stored: JSON (a model as its dump)."""
    return json.dumps(value.model_dump() if isinstance(value, BaseModel) else value)


def _encode(fields: dict[str, Any]) -> dict[EncodableT, EncodableT]:
    return {k: encode_status_value(v) for k, v in fields.items()}


def _decode(raw: Mapping[bytes | str, bytes | str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, text in text_fields(raw).items():
        try:
            out[k] = json.loads(text)
        except json.JSONDecodeError:  # written by an older version as a bare string
            out[k] = text or None
    return out


class PatientStatusStore:
    """Typed reads and writes of the per-patient status hash and the ward's patient index."""

    def __init__(self, redis: Redis, *, keep_marks_s: float = 2400.0) -> None:
        self.redis = redis
        self.keep_marks_s = keep_marks_s

    async def record_analysis(
        self, ward_id: str, patient_id: str, bed_id: str, analysis: CtgAnalysis, *,
        t_end: float, fhr_now: float | None, baseline_bpm: float | None, analysed_at: float,
    ) -> list[TraceMark]:
        """The FIGO analysis the worker just made, with its marks merged into the earlier ones;
        returns every mark now kept (events and not-fetal stretches), for the labour record."""
        events, not_fetal = analysis_marks(analysis)
        old_events, old_not_fetal = (  # only the marks: the rest of the status is not needed here
            [TraceMark.model_validate(m) for m in json.loads(raw)] if raw else []
            for raw in await self.redis.hmget(status_key(patient_id), ["events", "not_fetal"]))
        keep_from = t_end - self.keep_marks_s
        merged_events = merge_marks(old_events, events, analysis.t0, keep_from)
        merged_not_fetal = merge_marks(old_not_fetal, not_fetal, analysis.t0, keep_from)
        fields = {
            "bed_id": bed_id, "t_end": t_end, "classification": analysis.classification,
            "reasons": analysis.reasons, "quality": analysis.quality.grade, "baseline_bpm": baseline_bpm,
            "fhr_now": fhr_now, "analysed_at": analysed_at, "analysis_t0": analysis.t0,
            "events": [m.model_dump() for m in merged_events],
            "not_fetal": [m.model_dump() for m in merged_not_fetal],
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(status_key(patient_id), mapping=_encode(fields))
            pipe.zadd(ward_key(ward_id), {patient_id: t_end})
            await pipe.execute()
        return merged_events + merged_not_fetal

    async def record_refresh(self, ward_id: str, patient_id: str, *, t_end: float, fhr_now: float | None,
                             baseline_bpm: float | None, analysed_at: float) -> None:
        """A refresh of the analysis that changed nothing but the clock: the class, reasons and marks written
        with the last minute measured stand (:meth:`record_analysis` rewrites them all, and its merge of the
        marks was the larger part of a refresh's cost)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(status_key(patient_id), mapping=_encode({
                "t_end": t_end, "fhr_now": fhr_now, "baseline_bpm": baseline_bpm, "analysed_at": analysed_at}))
            pipe.zadd(ward_key(ward_id), {patient_id: t_end})
            await pipe.execute()

    async def record_vitals(self, patient_id: str, bed_id: str, *, meows_red: int, meows_yellow: int,
                            observed_ts: float) -> None:
        await self.redis.hset(status_key(patient_id), mapping=_encode({
            "bed_id": bed_id, "meows_red": meows_red, "meows_yellow": meows_yellow, "vitals_ts": observed_ts}))

    async def record_models(self, patient_id: str, *, models: str, evidence: dict[str, Any],
                            error: ModelError | None, risk: tuple[float, float] | None = None) -> None:
        """The models' status and evidence; ``risk`` = (recording time, P(pH < 7.05)) extends the risk trend."""
        fields: dict[str, Any] = {"models": models, "model_evidence": evidence}
        if error is not None:
            fields["model_error"] = error
        if risk is not None:
            raw = await self.redis.hget(status_key(patient_id), "risk_trend")
            trend = [RiskPoint.model_validate(x) for x in json.loads(raw)] if raw else []
            fields["risk_trend"] = [x.model_dump() for x in extend_risk_trend(trend, *risk)]
        await self.redis.hset(status_key(patient_id), mapping=_encode(fields))

    async def record_notices(self, patient_id: str, bed_id: str, notices: Iterable[Any]) -> None:
        """The patient's current notices (objects with kind, problem, sentence, since, qualifying)."""
        views = [NoticeView(kind=n.kind, problem=n.problem, sentence=n.sentence, since=n.since,
                            qualifying=n.qualifying).model_dump() for n in notices]
        await self.redis.hset(status_key(patient_id), mapping=_encode({"bed_id": bed_id, "notices": views}))

    async def read(self, patient_id: str) -> PatientStatus:
        raw = await self.redis.hgetall(status_key(patient_id))
        return PatientStatus.model_validate({**_decode(raw), "patient_id": patient_id})

    async def occupied_beds(self, ward_id: str, within_s: float, now: float | None = None) -> dict[str, str]:
        """The ward's beds held by a live patient (a packet stored in the last ``within_s``): bed -> patient."""
        now = time.time() if now is None else now
        ids = [as_text(m) for m in await self.redis.zrange(ward_key(ward_id), 0, -1)]
        held: dict[str, str] = {}
        for status in await self.read_many(ids):
            if status.bed_id and status.last_packet_at is not None and now - status.last_packet_at <= within_s:
                held[status.bed_id] = status.patient_id
        return held

    async def read_many(self, patient_ids: list[str]) -> list[PatientStatus]:
        """Several patients' status in one round trip (the ward snapshot, every second)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in patient_ids:
                pipe.hgetall(status_key(pid))
            raws = await pipe.execute()
        return [PatientStatus.model_validate({**_decode(raw), "patient_id": pid}) for pid, raw in zip(patient_ids, raws)]

    async def ward_patients(self, ward_id: str) -> list[str]:
        return [as_text(p) for p in await self.redis.zrange(ward_key(ward_id), 0, -1)]

    async def leave_ward(self, ward_id: str, patient_ids: list[str]) -> None:
        """Take patients off the ward index (their status hash and labour record stay). A packet
        of theirs puts them back (:meth:`stream.state.windows.WindowStore.save_packets`)."""
        if patient_ids:
            await self.redis.zrem(ward_key(ward_id), *patient_ids)
