"""The wall's live feed, the audio pause and the vitals bands, on an in-process Redis."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from stream.core.schemas import CtgPacket, Reading, VitalsObservation
from stream.state.audio_pause import AudioPauseStore
from stream.state.windows import PatientWindow, WindowStore, packet_index
from stream.station.feed import WallFeed
from stream.station.schemas import Tile, Ward
from stream.station.views import vitals_point


async def store_packets(windows: WindowStore, pid: str, t0: float, seconds: int, fhr: float = 140.0) -> None:
    window = PatientWindow(pid, "bed-f", 3600)
    for i in range(seconds):
        pkt = CtgPacket(patient_id=pid, bed_id="bed-f", device_id="m", start_ts=t0 + i, fhr=[fhr] * 4, uc=[20.0] * 4,
                        mhr=[85.0] * 4)
        window.add(packet_index(pkt), np.array(pkt.fhr), np.array(pkt.uc), np.array(pkt.mhr))
        await windows.save_packet(window, pkt, ward_id="w")


async def drain(queue) -> list[tuple[str, dict]]:
    out = []
    while not queue.empty():
        event, data = queue.get_nowait()
        out.append((event, json.loads(data)))
    return out


async def test_the_feed_sends_history_first_then_only_the_new_seconds(redis) -> None:
    windows = WindowStore(redis, capacity_s=3600)
    t0 = float(int(time.time()) - 600)
    await store_packets(windows, "p1", t0, 300)
    ward = {"class": "normal"}

    async def snapshot() -> Ward:
        tile = Tile(patient_id="p1", bed_id="bed-f", classification=ward["class"], alerts=[], worst="none",
                    fhr_now=140.0 + time.time() % 7, last_packet_at=time.time())  # these two change all the time
        return Ward(ward_id="w", patients=[tile], open_alerts=0)

    feed = WallFeed(windows, snapshot, wall_s=120.0)
    queue = feed.subscribe()
    feed.task.cancel()  # the test drives the rounds itself
    await feed.step(first=True)
    (e1, history), (e2, snap) = await drain(queue)
    assert (e1, e2) == ("history", "ward") and snap["full"] and snap["order"] == ["p1"]
    assert snap["tiles"]["p1"]["classification"] == "normal" and "fhr_now" not in snap["tiles"]["p1"]
    first, fhr, uc, mhr = history["beds"]["p1"]
    assert first + len(fhr) == t0 + 300 and len(fhr) >= 110  # the last wall_s, at 1 Hz
    assert set(fhr) == {140} and set(uc) == {20} and set(mhr) == {85}
    await feed.step()
    assert await drain(queue) == []  # nothing new (arrival times and the latest FHR are not the wall's): nothing sent
    await store_packets(windows, "p1", t0 + 300, 3, fhr=0.0)  # 3 new seconds, signal lost
    ward["class"] = "suspicious"
    await feed.step()
    messages = await drain(queue)
    assert [e for e, _ in messages] == ["samples", "ward"]
    assert messages[0][1]["beds"] == {"p1": [t0 + 300, [None] * 3, [20] * 3, [85] * 3]}
    change = messages[1][1]
    assert not change.get("full") and "order" not in change and change["tiles"]["p1"]["classification"] == "suspicious"
    # a browser that connects now gets the whole strip, the new seconds included
    late = feed.subscribe()
    (_, history2), _ = await drain(late)
    first2, fhr2, _, _ = history2["beds"]["p1"]
    assert first2 + len(fhr2) == t0 + 303 and fhr2[-3:] == [None] * 3


async def test_a_browser_that_does_not_read_is_let_go(redis) -> None:
    windows = WindowStore(redis, capacity_s=3600)
    counter = {"n": 0}

    async def snapshot() -> Ward:
        counter["n"] += 1
        return Ward(ward_id="w", patients=[], open_alerts=counter["n"])

    feed = WallFeed(windows, snapshot, queue_size=3)
    queue = feed.subscribe()
    feed.task.cancel()
    for i in range(6):
        await feed.step(first=i == 0)
    assert queue not in feed.subscribers
    assert [queue.get_nowait()[0] for _ in range(queue.qsize())][-1] == "reset"


async def test_an_audio_pause_is_logged_with_its_user_and_ends_by_itself(redis) -> None:
    audio = AudioPauseStore(redis, "w")
    now = time.time()
    pause = await audio.pause("ann", 2, now=now)
    assert pause.until == now + 120 and (await audio.current(now=now + 60)).by == "ann"
    assert await audio.current(now=now + 121) is None
    assert (await audio.pause("bob", 60, now=now)).until == now + 600  # at most 10 min
    await audio.resume("cat")
    assert await audio.current() is None
    assert [(e["event"], e["by"]) for e in await audio.log()] == [
        ("audio_resumed", "cat"), ("audio_paused", "bob"), ("audio_paused", "ann")]


def test_vitals_carry_their_meows_band() -> None:
    t = time.time()
    obs = VitalsObservation(patient_id="p", bed_id="b", device_id="d", heart_rate=Reading(value=125.0, ts=t),
                            systolic_bp=Reading(value=155.0, ts=t), spo2=Reading(value=98.0, ts=t))
    point = vitals_point(obs)  # MEOWS (Singh 2012): HR > 120 red, SBP 150-160 yellow, SpO2 >= 95 no trigger
    assert point.bands == {"heart_rate": "red", "systolic_bp": "yellow", "blood_pressure": "yellow"}
    assert point.banded_by == {"blood_pressure": "systolic"}
    assert point.values == {"heart_rate": 125.0, "systolic_bp": 155.0, "spo2": 98.0}


@pytest.mark.parametrize(("systolic", "diastolic", "band", "by"), [
    (139.0, 94.0, "yellow", "diastolic"),  # MEOWS: diastolic 90-99 yellow, systolic < 150 no trigger
    (155.0, 102.0, "red", "diastolic"),  # diastolic >= 100 red beats systolic 150-159 yellow
    (165.0, 85.0, "red", "systolic"),
    (120.0, 75.0, None, None),
])
def test_a_blood_pressure_is_banded_by_its_worse_component(systolic: float, diastolic: float, band: str | None,
                                                           by: str | None) -> None:
    """One BP cell, one band: every page (bed page, hand-over, wall) reads ``blood_pressure`` and ``banded_by``."""
    t = time.time()
    obs = VitalsObservation(patient_id="p", bed_id="b", device_id="d", systolic_bp=Reading(value=systolic, ts=t),
                            diastolic_bp=Reading(value=diastolic, ts=t))
    point = vitals_point(obs)
    assert point.bands.get("blood_pressure") == band
    assert point.banded_by.get("blood_pressure") == by


async def test_a_redis_outage_is_named_on_the_open_walls_and_logged_once(redis, caplog) -> None:
    """The feed cannot read the ward: every open wall gets the outage by cause (its tiles stay), the log gets
    one line when it starts and one when it ends, not a traceback a second."""
    import logging

    from redis.exceptions import ConnectionError as RedisConnectionError

    windows = WindowStore(redis, capacity_s=3600)
    down = {"now": False}

    async def snapshot() -> Ward:
        if down["now"]:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:16379. Connection refused.")
        tile = Tile(patient_id="p1", bed_id="bed-f", alerts=[], worst="none", last_packet_at=time.time())
        return Ward(ward_id="w", patients=[tile], open_alerts=0)

    feed = WallFeed(windows, snapshot, wall_s=120.0, push_s=0.05)
    queue = feed.subscribe()
    feed.task.cancel()
    await feed.step(first=True)
    await drain(queue)
    down["now"] = True
    with caplog.at_level(logging.WARNING, logger="stream.station.feed"):
        for _ in range(5):
            try:
                await feed.step()
                feed._recovered()
            except Exception as exc:
                feed._failed(exc)
        ((event, msg),) = await drain(queue)
        assert event == "ward" and msg["tiles"] == {}  # the tiles stay on screen
        (outage,) = msg["head"]["outages"]
        assert outage["cause"] == "redis_unreachable" and outage["alarms_stopped"] and "Redis" in outage["sentence"]
        down["now"] = False
        await feed.step()
        feed._recovered()
    (event, msg), = [m for m in await drain(queue) if m[0] == "ward"]
    assert msg["head"]["outages"] == []  # back: the banner goes
    lines = [r for r in caplog.records if r.name == "stream.station.feed"]
    assert len(lines) == 2 and not any(r.exc_info for r in lines), [r.getMessage() for r in lines]
