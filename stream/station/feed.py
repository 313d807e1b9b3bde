"""The live feed of the trace wall: one reader of Redis per station process, any number of browsers.

Every ``push_s`` the feed reads, once for all connected browsers, the new
packets of every bed of the ward and the ward snapshot. It keeps the last
``wall_s`` of each bed at 1 Hz and sends each browser only what is new:

* ``history``: on connecting, every bed's last ``wall_s`` (what the wall draws first);
* ``samples``: each second, per bed, the seconds completed since the last message
  (``[first second, FHR, UC, maternal HR or 0]``, integers, ``null`` = no signal);
* ``ward``: what changed in the ward snapshot: the ward's head (banner, audio pause), the
  tiles that changed (alarms, notices, class, MEOWS, signal, strip, interrupted), the beds
  that left and the bed order when it changed. Fields that change with every packet or
  analysis (arrival times, the analysis' FHR) are not sent: the wall draws the live samples.

So a browser costs the server a queue and a few kilobytes a second, not a
Redis read per bed: the server's work does not grow with the number of
screens. A browser that cannot keep up (its queue is full) is disconnected;
its EventSource reconnects and starts again from a fresh ``history``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from redis.exceptions import RedisError

from stream.core.schemas import CTG_FS_HZ
from stream.state.labour_record import one_hz
from stream.state.windows import PatientWindow, WindowStore
from stream.station.schemas import Outage, Tile, Ward
from stream.station.views import redis_outage

log = logging.getLogger(__name__)

#: How far back before the next expected sample the feed asks Redis, so a packet that overlaps it is not missed.
_OVERLAP_SAMPLES = int(10 * CTG_FS_HZ)


def _ints(x: np.ndarray | None) -> list[int | None] | int:
    if x is None:
        return 0
    return [None if not math.isfinite(v) or v <= 0 else int(round(v)) for v in x.tolist()]


#: Tile fields the wall does not use and that change with every packet or analysis.
#: ``outages`` are the ward's, sent once in the ward's head, not again in every tile.
_VOLATILE = {"t_end", "analysed_at", "analysis_t0", "fhr_now", "vitals_ts", "model_evidence", "last_packet_at", "reasons",
             "outages"}


def wall_tile(tile: Tile) -> str:
    """A tile as the wall needs it, so that it changes only when what the wall shows changes."""
    data = tile.model_dump(exclude={**dict.fromkeys(_VOLATILE, True), "alerts": {"__all__": {"updated_at"}}})
    data["baseline_bpm"] = None if tile.baseline_bpm is None else round(tile.baseline_bpm)
    if tile.data_interrupted:
        data["last_packet_at"] = tile.last_packet_at
    return json.dumps(data, separators=(",", ":"))


@dataclass
class BedStrip:
    """One bed's last seconds at 4 Hz (to place packets) and how far it was sent at 1 Hz."""

    window: PatientWindow
    sent_until: int | None = None  # epoch second up to which (exclusive) the browsers have the samples

    async def next_index(self, windows: WindowStore, wall_s: float) -> int | None:
        """Where to read from: just before what it has; at first, ``wall_s`` before the bed's newest packet
        (a bed's recording clock can lag the wall clock, e.g. a replay catching up)."""
        if self.window.end_index is not None:
            return self.window.end_index - _OVERLAP_SAMPLES
        newest = await windows.newest_index(self.window.patient_id)
        return None if newest is None else newest - int(wall_s * self.window.fs)

    def completed(self, wall_s: float) -> list | None:
        """The seconds completed since the last call, as ``[first second, FHR, UC, MHR or 0]`` (None: none)."""
        w = self.window
        if w.end_index is None:
            return None
        done = w.end_index // int(w.fs)
        start = max(self._first_second(), done - int(wall_s), self.sent_until or 0)
        if done <= start:
            return None
        self.sent_until = done
        return self._seconds(start, done)

    def history(self) -> list | None:
        """The whole kept stretch, for a browser that just connected."""
        w = self.window
        if w.end_index is None or w.fhr.size < w.fs:
            return None
        start = self._first_second()
        done = self.sent_until if self.sent_until is not None else w.end_index // int(w.fs)
        return self._seconds(start, max(start, done))

    def _first_second(self) -> int:
        """The first whole second the 4-Hz window holds."""
        w = self.window
        return -(-(w.end_index - w.fhr.size) // int(w.fs)) if w.end_index is not None else 0

    def _seconds(self, start: int, done: int) -> list:
        """Seconds ``start`` to ``done`` (exclusive) at 1 Hz, as integers for the browser."""
        f1, u1, m1 = one_hz(*self.window.span(start, done), self.window.fs)
        return [start, _ints(f1), _ints(u1), _ints(m1)]


@dataclass
class WallFeed:
    """Reads the ward once per ``push_s`` and fans the changes out to every subscribed browser."""

    windows: WindowStore
    snapshot: Callable[[], Awaitable[Ward]]  # the ward as the wall shows it: its tiles are the beds drawn
    wall_s: float = 1200.0
    push_s: float = 1.0
    queue_size: int = 120
    strips: dict[str, BedStrip] = field(default_factory=dict)
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    last_ward: str | None = None  # the head of the last snapshot (None: nothing read yet)
    tiles: dict[str, str] = field(default_factory=dict)  # patient -> the tile as last sent
    order: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None
    failing_since: float | None = None  # when reading the ward started failing (None: the last read worked)

    def subscribe(self) -> asyncio.Queue:
        """A queue that gets ``history`` first, then every ``samples`` and ``ward`` message."""
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        if self.last_ward is not None:
            queue.put_nowait(("history", self._history()))
            queue.put_nowait(("ward", self._full()))
        self.subscribers.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="wall-feed")
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def _full(self) -> str:
        """The whole ward as a change from nothing (for a browser that just connected)."""
        tiles = ",".join(f'"{pid}":{self.tiles[pid]}' for pid in self.order)
        return f'{{"full":true,"head":{self.last_ward},"order":{json.dumps(self.order)},"tiles":{{{tiles}}}}}'

    def _history(self) -> str:
        beds = {pid: h for pid, strip in self.strips.items() if (h := strip.history()) is not None}
        return json.dumps({"wall_s": self.wall_s, "beds": beds}, separators=(",", ":"))

    async def _run(self) -> None:
        first = True
        while self.subscribers:
            started = time.monotonic()
            try:
                await self.step(first)
                first = False
                self._recovered()
            except Exception as exc:  # Redis down: the screens say so; the feed tries again every push_s
                self._failed(exc)
            await asyncio.sleep(max(0.05, self.push_s - (time.monotonic() - started)))
        self.task, self.last_ward = None, None  # nobody watching: the next browser starts from a fresh read
        self.strips.clear()
        self.tiles.clear()
        self.order = []

    async def step(self, first: bool = False) -> None:
        """One round: read new packets of every bed and the ward; queue what changed."""
        ward = await self.snapshot()
        patients = [t.patient_id for t in ward.patients]
        for gone in set(self.strips) - set(patients):
            del self.strips[gone]
        samples: dict[str, list] = {}
        for pid in patients:
            strip = self.strips.get(pid)
            if strip is None:
                strip = self.strips[pid] = BedStrip(PatientWindow(pid, "?", self.wall_s + 60))
            since = await strip.next_index(self.windows, self.wall_s)
            for start, fhr, uc, mhr in ([] if since is None else await self.windows.packets_since(pid, since)):
                strip.window.add(start, fhr, uc, mhr)
            new = strip.completed(self.wall_s)
            if new is not None:
                samples[pid] = new
        head = ward.model_dump_json(exclude={"patients"})
        tiles = {t.patient_id: wall_tile(t) for t in ward.patients}
        order = [t.patient_id for t in ward.patients]
        changed = {pid: tile for pid, tile in tiles.items() if self.tiles.get(pid) != tile}
        removed = [pid for pid in self.tiles if pid not in tiles]
        news = first or self.last_ward is None
        moved = order != self.order
        head_changed = head != self.last_ward
        self.last_ward, self.tiles, self.order = head, tiles, order
        if news:
            history, full = self._history(), self._full()
            for queue in list(self.subscribers):  # those that subscribed before the feed had read anything
                if queue.empty():
                    queue.put_nowait(("history", history))
                    queue.put_nowait(("ward", full))
            return
        if samples:
            self._send(("samples", json.dumps({"t": time.time(), "beds": samples}, separators=(",", ":"))))
        if changed or removed or moved or head_changed:
            parts = [f'"head":{head}', '"tiles":{' + ",".join(f'"{pid}":{t}' for pid, t in changed.items()) + "}"]
            if removed:
                parts.append(f'"removed":{json.dumps(removed)}')
            if moved:
                parts.append(f'"order":{json.dumps(order)}')
            self._send(("ward", "{" + ",".join(parts) + "}"))

    def _failed(self, exc: Exception) -> None:
        """Reading the ward failed: one log line when it starts (not a traceback a second), and every open
        wall is told, by cause, while the tiles it has stay on screen."""
        if self.failing_since is not None:
            return
        self.failing_since = time.time()
        if isinstance(exc, RedisError):
            log.warning("wall feed: Redis is unreachable (%s: %s); the open walls show it and the feed retries",
                        type(exc).__name__, exc)
            outage = redis_outage(self.failing_since)
        else:
            log.exception("wall feed: reading the ward failed; the open walls show it and the feed retries")
            outage = Outage(cause="redis_unreachable", since=self.failing_since, alarms_stopped=True,
                            sentence=f"The station cannot read the ward ({type(exc).__name__}); call IT.")
        if self.last_ward is None:
            return  # nothing shown yet: a browser that connects now gets the 503 of the snapshot route
        head = json.loads(self.last_ward)
        head["outages"] = [outage.model_dump(), *[o for o in head.get("outages", [])
                                                  if o.get("cause") != "redis_unreachable"]]
        self.last_ward = json.dumps(head, separators=(",", ":"))
        self._send(("ward", f'{{"head":{self.last_ward},"tiles":{{}}}}'))

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.warning("wall feed: the ward is readable again after %.0f s", time.time() - self.failing_since)
            self.failing_since = None

    def _send(self, message: tuple[str, str]) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # a browser that does not read: it reconnects and starts afresh
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(("reset", "{}"))
