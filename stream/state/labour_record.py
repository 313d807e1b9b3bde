"""The whole labour, kept for the bed page's scrollback, the 4-h / 12-h trends and the hand-over.

The worker's window holds the last hour at 4 Hz; a labour lasts many. Two
compact records are written by the worker as it analyses and read by the
nurse station:

* **Chart** (``ctgw:chart:<patient>``): one member per recording minute,
  scored by the minute's start: FHR, maternal HR and UC at 1 Hz as bytes
  (0 = no value), as a paper trace keeps them, and beside it
  (``ctgw:chart-marks:<patient>``) the events and not-fetal stretches of
  that minute. A minute is written once it has left the 30-min window the
  newest minute is measured on, because only then are its marks final (no
  measurement looks at it again), so the archive draws exactly what the live
  view drew. About
  200 bytes per minute: a 24-h labour is under 300 kB.
* **Trend** (``ctgw:trend:<patient>``): one point per 5 min: the whole-labour
  class and what the 30-min window of the newest minute found (baseline, variability, decelerations
  and their approximate area, contractions per 10 min, class, signal
  quality), the raw material of the trend views and of the hand-over's
  classification history.

Both are trimmed to ``keep_s`` (24 h by default).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from detectors.baseline import to_1hz
from detectors.ctg import CtgAnalysis
from detectors.runs import runs
from stream.core.redis_values import as_bytes
from stream.state.patient_status import ModelError, TraceMark

TREND_STEP_S = 300.0
KEEP_S = 24 * 3600.0
_MINUTE = struct.Struct("<qB")  # minute start (epoch s), has maternal HR


class TrendPoint(BaseModel):
    """The whole-labour class at ``t`` and what the 30-min window before it found: one point of the 4-h / 12-h trends."""

    t: float
    classification: str
    baseline_bpm: float | None = None
    variability_bpm: float | None = None
    accelerations: int = 0
    decelerations: int = 0
    deceleration_area: float = Field(default=0.0, description=(
        "Sum over the decelerations of depth x duration / 2 (bpm·min, a triangle's area): the burden of the window."))
    prolonged_decelerations: int = 0
    contractions_per_10min: float | None = None
    quality: str | None = None
    window_s: float = 1800.0


def trend_point(analysis: CtgAnalysis, t: float) -> TrendPoint:
    """One trend point from an analysis (pure: the values the FIGO analysis already reported)."""
    def rounded(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(float(x), 1)

    decels = analysis.decelerations
    return TrendPoint(
        t=t, classification=analysis.classification,
        baseline_bpm=rounded(analysis.baseline.value if analysis.baseline else None),
        variability_bpm=rounded(analysis.variability.median_bpm if analysis.variability else None),
        accelerations=len(analysis.accelerations), decelerations=len(decels),
        deceleration_area=round(sum(d.excursion.amplitude * d.excursion.duration / 60 / 2 for d in decels), 1),
        prolonged_decelerations=sum(d.kind == "prolonged" for d in decels),
        contractions_per_10min=rounded(analysis.contractions_per_10min),
        quality=analysis.quality.grade, window_s=analysis.duration_s,
    )


def anomaly_marks(error: ModelError, since: float) -> list[TraceMark]:
    """The seconds from ``since`` on that the autoencoder reconstructed worse than its threshold, as marks."""
    above = np.asarray(error.error) > error.threshold
    first = max(0, int(math.ceil(since - error.t0)))
    return [TraceMark(kind="autoencoder", start=error.t0 + first + a, end=error.t0 + first + b)
            for a, b in runs(above[first:])]


@dataclass
class ChartMinutes:
    """A stretch of the chart at 1 Hz: NaN where there was no signal; ``mhr`` None if never recorded."""

    t0: float
    fhr: np.ndarray
    uc: np.ndarray
    mhr: np.ndarray | None


def to_bytes(x: np.ndarray) -> bytes:
    """1-Hz values as one byte each, value + 1 (0 = no value): FHR, maternal HR and UC all fit 0-254."""
    return np.where(np.isfinite(x), np.clip(np.round(x), 0, 254) + 1, 0).astype(np.uint8).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    v = np.frombuffer(raw, dtype=np.uint8).astype(float)
    return np.where(v > 0, v - 1, np.nan)


def pack_minute(start: float, fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None) -> bytes:
    return _MINUTE.pack(int(start), mhr is not None) + to_bytes(fhr) + to_bytes(uc) + (b"" if mhr is None else to_bytes(mhr))


def unpack_minute(blob: bytes) -> tuple[float, np.ndarray, np.ndarray, np.ndarray | None]:
    start, has_mhr = _MINUTE.unpack_from(blob)
    body = blob[_MINUTE.size:]
    n = len(body) // (3 if has_mhr else 2)
    return float(start), from_bytes(body[:n]), from_bytes(body[n:2 * n]), from_bytes(body[2 * n:]) if has_mhr else None


def one_hz(fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """4-Hz samples as the chart keeps them: the mean of the valid samples of each second."""
    f1, ok = to_1hz(fhr, fhr > 0, fs)
    u1, _ = to_1hz(uc, np.ones(uc.size, bool), fs)
    m1 = None if mhr is None else to_1hz(mhr, mhr > 0, fs)[0]
    return np.where(ok, f1, np.nan), u1, m1


class LabourRecordStore:
    """Writes (worker) and reads (station) of the chart and the trend of each patient."""

    def __init__(self, redis: Redis, *, keep_s: float = KEEP_S) -> None:
        self.redis = redis
        self.keep_s = keep_s

    @staticmethod
    def _chart(pid: str) -> str:
        return f"ctgw:chart:{pid}"

    @staticmethod
    def _marks(pid: str) -> str:
        return f"ctgw:chart-marks:{pid}"

    @staticmethod
    def _trend(pid: str) -> str:
        return f"ctgw:trend:{pid}"

    async def archived_until(self, patient_id: str) -> float | None:
        """End of the newest archived minute (None: nothing archived), so a restarted worker resumes there."""
        last = await self.redis.zrange(self._chart(patient_id), -1, -1, withscores=True)
        return float(last[0][1]) + 60.0 if last else None

    async def archive(self, patient_id: str, minutes: ChartMinutes, marks: list[TraceMark]) -> None:
        """Whole minutes of ``minutes`` (starting on a minute boundary) and the marks that end in them."""
        n = minutes.fhr.size // 60
        if n == 0:
            return
        end = minutes.t0 + 60 * n
        members = {}
        for i in range(n):
            s = slice(60 * i, 60 * (i + 1))
            start = minutes.t0 + 60 * i
            members[pack_minute(start, minutes.fhr[s], minutes.uc[s], None if minutes.mhr is None else minutes.mhr[s])] = start
        kept = {json.dumps(m.model_dump()): m.start for m in marks if minutes.t0 < m.end <= end}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._chart(patient_id), members)
            if kept:
                pipe.zadd(self._marks(patient_id), kept)
            for key in (self._chart(patient_id), self._marks(patient_id)):
                pipe.zremrangebyscore(key, "-inf", f"({end - self.keep_s}")
            await pipe.execute()

    async def add_marks(self, patient_id: str, marks: list[TraceMark]) -> None:
        """Marks known final when made (the autoencoder's shading of its newest interval)."""
        if marks:
            await self.redis.zadd(self._marks(patient_id), {json.dumps(m.model_dump()): m.start for m in marks})

    async def add_trend(self, patient_id: str, point: TrendPoint) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._trend(patient_id), {point.model_dump_json(): point.t})
            pipe.zremrangebyscore(self._trend(patient_id), "-inf", f"({point.t - self.keep_s}")
            await pipe.execute()

    async def trend(self, patient_id: str, since: float = float("-inf")) -> list[TrendPoint]:
        return (await self.trends([patient_id], since))[patient_id]

    async def trends(self, patient_ids: list[str], since: float) -> dict[str, list[TrendPoint]]:
        """Several patients' trend points since ``since`` in one round trip (the wall's class strips)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in patient_ids:
                pipe.zrangebyscore(self._trend(pid), since, "+inf")
            raws = await pipe.execute()
        return {pid: [TrendPoint.model_validate_json(r) for r in raw] for pid, raw in zip(patient_ids, raws)}

    async def chart(self, patient_id: str, start: float, end: float) -> tuple[ChartMinutes | None, list[TraceMark]]:
        """The archived chart between ``start`` and ``end`` (whole minutes; gaps as NaN) and its marks."""
        raw = await self.redis.zrangebyscore(self._chart(patient_id), start - 60, f"({end}")
        marks = [TraceMark.model_validate_json(as_bytes(m)) for m in
                 await self.redis.zrangebyscore(self._marks(patient_id), start - 3600, f"({end}")]
        if not raw:
            return None, []
        rows = sorted((unpack_minute(as_bytes(r)) for r in raw), key=lambda r: r[0])
        t0, t1 = rows[0][0], rows[-1][0] + 60
        n = int(t1 - t0)
        fhr, uc = np.full(n, np.nan), np.full(n, np.nan)
        has_mhr = any(r[3] is not None for r in rows)
        mhr = np.full(n, np.nan) if has_mhr else None
        for s, f, u, m in rows:
            i = int(s - t0)
            fhr[i:i + f.size], uc[i:i + u.size] = f, u
            if mhr is not None and m is not None:
                mhr[i:i + m.size] = m
        return ChartMinutes(t0, fhr, uc, mhr), [m for m in marks if m.end > t0 and m.start < t1]
