"""One patient's recent CTG in memory, mirrored to Redis so a restart or a
rebalance loses nothing.

Samples are placed by absolute index (``round(ts * 4)``), which makes adding
a packet idempotent: a packet delivered twice (Kafka is at-least-once, a
restarted worker re-reads what it had not committed) adds nothing the second
time, an overlap is trimmed, and a gap is filled with NaN: no data arrived
there (monitor off, network, gateway, broker or worker down), which is not
the monitor's own report of signal loss (FHR 0). The detectors treat it as
missing and never as a finding about the transducer.

In Redis each accepted packet is one member of a sorted set scored by its
first index (``ctgw:win:<patient>``), so two writers of the same packet write
the same member and the window can be rebuilt by replaying the set. Maternal
vital signs are kept the same way (``ctgw:vitals:<patient>``, scored by time).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field

import numpy as np
from redis.asyncio import Redis

from detectors.fast import FastRuleState
from detectors.meows import VitalsObservation as MeowsObs
from detectors.meows import score_observation
from stream.core.redis_values import as_bytes
from stream.core.schemas import CTG_FS_HZ, CtgPacket, VitalsObservation
from stream.state.patient_status import encode_status_value, status_key, ward_key

_HEADER = struct.Struct("<qH?")  # first index, samples, has maternal HR


def _pack(start: int, fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None) -> bytes:
    body = fhr.astype("<f4").tobytes() + uc.astype("<f4").tobytes()
    if mhr is not None:
        body += mhr.astype("<f4").tobytes()
    return _HEADER.pack(start, len(fhr), mhr is not None) + body


def packet_arrays(packet: CtgPacket) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The packet's FHR, UC and maternal HR (None: not sent) as arrays, as a window takes them."""
    return np.array(packet.fhr), np.array(packet.uc), None if packet.mhr is None else np.array(packet.mhr)


def _packet_member(packet: CtgPacket) -> bytes:
    """The packet's member of its patient's sorted set: the same packet always gives the same bytes."""
    return _pack(packet_index(packet), *packet_arrays(packet))


def _unpack(blob: bytes) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None]:
    start, n, has_mhr = _HEADER.unpack_from(blob)
    arr = np.frombuffer(blob, dtype="<f4", offset=_HEADER.size).astype(float)
    return start, arr[:n], arr[n : 2 * n], arr[2 * n : 3 * n] if has_mhr else None


@dataclass
class NewSamples:
    t_first: float
    fhr: np.ndarray
    uc: np.ndarray
    mhr: np.ndarray | None
    gap: int = 0  # leading samples no packet brought (NaN in the window): no data, not signal loss


@dataclass
class PatientWindow:
    patient_id: str
    bed_id: str
    capacity_s: float
    fs: float = CTG_FS_HZ
    end_index: int | None = None  # absolute index of the next sample expected
    has_mhr: bool = False
    sensor: str = "unknown"  # the FHR sensor of the latest packet (ultrasound, fecg, unknown)
    fast: FastRuleState = field(default_factory=FastRuleState)
    baseline_bpm: float | None = None
    last_analysis_t: float | None = None
    last_model_t: float | None = None
    last_trend_t: float | None = None  # recording time of the last trend point written
    #: What the status last written in full showed (the newest measured minute, the class and its reasons): a
    #: refresh that changes neither writes only the clock (stream/worker/pipeline.py)
    shown_analysis: tuple | None = None
    archived_until: float | None = None  # end of the chart archived so far (None: not yet read from Redis)
    last_packet_monotonic: float = 0.0  # wall clock of the last packet, to forget discharged patients
    # FHR, UC and maternal HR as rows of one buffer with room to append: the window is _buf[:, _lo:_hi].
    # Copying the whole hour into a new array for every 1-s packet was 4% of a worker at 600 beds.
    _buf: np.ndarray = field(default_factory=lambda: np.zeros((3, 0)), repr=False)
    _lo: int = 0
    _hi: int = 0

    @property
    def capacity(self) -> int:
        return int(self.capacity_s * self.fs)

    @property
    def fhr(self) -> np.ndarray:
        return self._buf[0, self._lo:self._hi]

    @property
    def uc(self) -> np.ndarray:
        return self._buf[1, self._lo:self._hi]

    @property
    def mhr(self) -> np.ndarray:
        return self._buf[2, self._lo:self._hi]

    def _append(self, block: np.ndarray) -> None:
        """Append columns (FHR, UC, maternal HR) and drop what falls out of the capacity.

        When the buffer is full the window moves to a new buffer, never within the old one: arrays
        handed out earlier (views of the old buffer) keep their values.
        """
        cap, k = self.capacity, block.shape[1]
        if self._hi + k > self._buf.shape[1]:
            keep = min(self._hi - self._lo, max(cap - k, 0))
            room = max(keep + k, min(cap + max(cap // 4, 1), max(2 * (keep + k), 256)))
            new = np.empty((3, room))
            new[:, :keep] = self._buf[:, self._hi - keep:self._hi]
            self._buf, self._lo, self._hi = new, 0, keep
        self._buf[:, self._hi:self._hi + k] = block
        self._hi += k
        self._lo = max(self._lo, self._hi - cap)

    @property
    def t_end(self) -> float | None:
        """Time just after the newest sample (the patient's 'now' on the record's clock)."""
        return None if self.end_index is None else self.end_index / self.fs

    @property
    def t_start(self) -> float | None:
        return None if self.end_index is None else (self.end_index - self.fhr.size) / self.fs

    def add(self, start: int, fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None) -> NewSamples | None:
        """Place samples at absolute index ``start``; returns what was new (None: nothing)."""
        n = len(fhr)
        if self.end_index is not None and start + n <= self.end_index:
            return None  # already have all of it
        if self.end_index is not None and start < self.end_index:  # overlap: keep the new tail
            skip = self.end_index - start
            start, fhr, uc = start + skip, fhr[skip:], uc[skip:]
            mhr = None if mhr is None else mhr[skip:]
        gap = 0 if self.end_index is None else start - self.end_index
        if gap > self.capacity:  # a long outage: start afresh
            self._buf, self._lo, self._hi, gap = np.zeros((3, 0)), 0, 0, 0
        block = np.zeros((3, gap + len(fhr)))
        block[:, :gap] = np.nan  # no packet brought these samples: no data, not FHR 0 (signal loss)
        block[0, gap:], block[1, gap:] = fhr, uc
        if mhr is not None:
            block[2, gap:] = mhr
        self.has_mhr = self.has_mhr or mhr is not None
        self._append(block)
        self.end_index = start + len(fhr)
        return NewSamples((start - gap) / self.fs, block[0], block[1], None if mhr is None else block[2], gap=gap)

    def backfill(self, start: int, fhr: np.ndarray, uc: np.ndarray, mhr: np.ndarray | None) -> int:
        """Write samples of the past (a replayed dead letter) into the window; returns how many were placed.

        Only the part inside the window (the last ``capacity_s`` before ``end_index``) is placed;
        nothing after ``end_index`` is (that is new data: use :meth:`add`).
        """
        if self.end_index is None:
            return 0
        first = self.end_index - self.fhr.size
        lo, hi = max(start, first), min(start + len(fhr), self.end_index)
        if lo >= hi:
            return 0
        src, dst = slice(lo - start, hi - start), slice(lo - first, hi - first)
        self.fhr[dst] = np.asarray(fhr, float)[src]
        self.uc[dst] = np.asarray(uc, float)[src]
        if mhr is not None:
            self.mhr[dst] = np.asarray(mhr, float)[src]
            self.has_mhr = True
        return hi - lo

    def last(self, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
        """The newest ``seconds`` of FHR, UC, maternal HR (None if never sent) and their start time."""
        k = min(int(seconds * self.fs), self.fhr.size)
        t0 = (self.end_index - k) / self.fs if self.end_index is not None else 0.0
        return self.fhr[-k:] if k else self.fhr[:0], self.uc[-k:] if k else self.uc[:0], \
            (self.mhr[-k:] if k else self.mhr[:0]) if self.has_mhr else None, t0


    def span(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The 4-Hz FHR, UC and maternal HR (None if never sent) between recording times ``start`` and
        ``end`` (seconds; clipped to what the window holds)."""
        if self.end_index is None:
            return self.fhr[:0], self.uc[:0], None
        first = self.end_index - self.fhr.size
        a = min(max(int(round(start * self.fs)) - first, 0), self.fhr.size)
        b = min(max(int(round(end * self.fs)) - first, a), self.fhr.size)
        return self.fhr[a:b], self.uc[a:b], self.mhr[a:b] if self.has_mhr else None


#: Each patient's window is the sorted set under this prefix and her id (the packet write reads the id back).
_WIN_PREFIX = "ctgw:win:"

#: The packet write of :meth:`WindowStore.save_packets`. KEYS: per packet its window (``ctgw:win:<patient>``, the
#: patient read back from the key) and its status hash, then the ward's set (absent: no ward). ARGV: the packet
#: count, the wall time of arrival (JSON, as the status hash holds its values), then per packet its member and one
#: line of text: its first index, the oldest index its window keeps, its last sample's time and its bed (JSON). Two
#: arguments a packet, not six: the client encodes each argument in Python, and that was a third of the write's cost.
_SAVE_PACKETS = """
local n = tonumber(ARGV[1])
local ward = KEYS[2 * n + 1]
for i = 0, n - 1 do
  local win, status, a = KEYS[2 * i + 1], KEYS[2 * i + 2], 3 + 2 * i
  local start, oldest, t_end, bed = string.match(ARGV[a + 1], '^(%S+) (%S+) (%S+) (.*)$')
  redis.call('ZADD', win, start, ARGV[a])
  redis.call('ZREMRANGEBYSCORE', win, '-inf', '(' .. oldest)
  redis.call('HSET', status, 'bed_id', bed, 'last_packet_at', ARGV[2])
  if ward then
    redis.call('ZADD', ward, 'GT', t_end, string.sub(win, PREFIX_LEN + 1))
  end
end
return n
""".replace("PREFIX_LEN", str(len(_WIN_PREFIX)))


def packet_index(packet: CtgPacket) -> int:
    return int(round(packet.start_ts * packet.fs_hz))


class WindowStore:
    """Redis mirror of the patient windows and vitals histories."""

    def __init__(self, redis: Redis, *, capacity_s: float, vitals_keep_s: float = 24 * 3600.0) -> None:
        self.redis = redis
        self.capacity_s = capacity_s
        self.vitals_keep_s = vitals_keep_s
        self._save_script = redis.register_script(_SAVE_PACKETS)

    @staticmethod
    def _win(pid: str) -> str:
        return f"{_WIN_PREFIX}{pid}"

    @staticmethod
    def _vitals(pid: str) -> str:
        return f"ctgw:vitals:{pid}"

    async def save_packet(self, window: PatientWindow, packet: CtgPacket, ward_id: str | None = None) -> None:
        await self.save_packets([(window, packet)], ward_id=ward_id)

    async def save_packets(self, packets: list[tuple[PatientWindow, CtgPacket]], ward_id: str | None = None) -> None:
        """Store accepted packets (each with its patient's window, already extended) in one command.

        One script for a whole batch (:data:`_SAVE_PACKETS`): each packet's member, the trim of its window,
        the bed's arrival time and the ward's newest time, applied together as the transaction it replaced
        was (a script runs whole). The client packs one command and reads one reply instead of four per
        packet: with a transaction the client's per-command work, not Redis, was most of the packet path
        (``python bench/packet_path.py``, docs/BENCHMARKS.md).
        """
        if not packets:
            return
        keys: list[str] = []
        args: list[bytes | str | int] = [len(packets), encode_status_value(time.time())]
        for window, packet in packets:
            start = packet_index(packet)
            oldest = (window.end_index or start) - int(self.capacity_s * packet.fs_hz) - len(packet.fhr)
            t_end = packet.start_ts + len(packet.fhr) / packet.fs_hz
            keys += [self._win(packet.patient_id), status_key(packet.patient_id)]
            args += [_packet_member(packet), f"{start} {oldest} {t_end!r} {encode_status_value(packet.bed_id)}"]
        if ward_id is not None:
            keys.append(ward_key(ward_id))
        await self._save_script(keys=keys, args=args)

    async def load(self, patient_id: str, bed_id: str, baseline_bpm: float | None = None) -> PatientWindow:
        """Rebuild a window (and its fast-rule counters) from Redis; empty if none is stored.

        ``baseline_bpm`` is the last analysis' baseline (kept with the patient's status): with it the
        prolonged-deceleration counter resumes too, so a deceleration under way when a worker died or a
        partition moved still alarms at 3 min, not only after the next analysis.
        """
        window = PatientWindow(patient_id, bed_id, self.capacity_s)
        for blob in await self.redis.zrange(self._win(patient_id), 0, -1):
            start, fhr, uc, mhr = _unpack(as_bytes(blob))
            window.add(start, fhr, uc, mhr)
        window.baseline_bpm = baseline_bpm
        if window.t_start is not None:
            window.fast.update(window.fhr, window.t_start, baseline_bpm)
        return window

    async def packets_since(self, patient_id: str, index: int) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
        """The stored packets (first index, FHR, UC, maternal HR) that start at or after ``index`` (4-Hz
        sample number), oldest first: what a live view needs beyond what it already drew."""
        return [_unpack(as_bytes(blob)) for blob in await self.redis.zrangebyscore(self._win(patient_id), index, "+inf")]

    async def newest_index(self, patient_id: str) -> int | None:
        """First sample number of the newest stored packet (None: nothing stored)."""
        last = await self.redis.zrange(self._win(patient_id), -1, -1, withscores=True)
        return int(last[0][1]) if last else None

    async def save_vitals(self, obs: VitalsObservation) -> None:
        key = self._vitals(obs.patient_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {obs.model_dump_json(exclude_none=True): obs.observed_ts})
            pipe.zremrangebyscore(key, "-inf", f"({obs.observed_ts - self.vitals_keep_s}")
            await pipe.execute()

    async def already_stored(self, record: CtgPacket | VitalsObservation) -> bool:
        """True when exactly this record is stored already (a redelivery, not new data).

        A packet is stored as a deterministic member of the patient's sorted set, and an
        observation as its JSON; the same record therefore finds itself. A packet that overlaps
        what is stored but differs is not a duplicate.
        """
        if isinstance(record, CtgPacket):
            blob = _packet_member(record)
            return await self.redis.zscore(self._win(record.patient_id), blob) is not None
        return await self.redis.zscore(self._vitals(record.patient_id),
                                       record.model_dump_json(exclude_none=True)) is not None

    async def vitals_history(self, patient_id: str, since: float = float("-inf")) -> list[VitalsObservation]:
        """The patient's observations from ``since`` on (all kept, ``vitals_keep_s``, by default)."""
        raw = await self.redis.zrangebyscore(self._vitals(patient_id), since, "+inf")
        return [VitalsObservation.model_validate(json.loads(as_bytes(r))) for r in raw]


def meows_bands(obs: VitalsObservation) -> dict[str, str]:
    """The MEOWS band (red, yellow) of each of an observation's own readings, as the paper chart colours
    them (none: no trigger). Worked out here, on read, so that the station shows it without running a detector."""
    readings = {name: r.value for name, r in obs.readings().items()}
    result = score_observation(MeowsObs(t=obs.observed_ts, avpu=obs.avpu, **readings))
    bands = {**dict.fromkeys(result.yellow, "yellow"), **dict.fromkeys(result.red, "red")}
    worst = worst_band(bands, BLOOD_PRESSURE)
    if worst is not None:
        bands["blood_pressure"] = worst[0]
    return bands


#: A blood pressure reading is one cell: banded by the worse of its two components (MEOWS bands each).
BLOOD_PRESSURE = {"systolic_bp": "systolic", "diastolic_bp": "diastolic"}
BAND_ORDER = {"yellow": 1, "red": 2}


def worst_band(bands: dict[str, str], components: dict[str, str]) -> tuple[str, str] | None:
    """The worst band among ``components`` and which component gave it (the first listed on a tie)."""
    found = [(BAND_ORDER[bands[k]], -i, bands[k], word) for i, (k, word) in enumerate(components.items()) if k in bands]
    if not found:
        return None
    _, _, band, word = max(found)
    return band, word


def banded_by(bands: dict[str, str]) -> dict[str, str]:
    """For the readings shown as one cell (blood pressure), which component set its band (``bands``:
    :func:`meows_bands` of the observation)."""
    worst = worst_band(bands, BLOOD_PRESSURE)
    return {} if worst is None else {"blood_pressure": worst[1]}
