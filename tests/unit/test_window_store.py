"""The packet write (one script per batch, stream/state/windows.py): each packet stored and found again, the
window trimmed to its capacity, the bed's arrival and the ward's newest time noted, a reload equal to memory."""

from __future__ import annotations

import numpy as np

from stream.core.schemas import CtgPacket
from stream.state.patient_status import PatientStatusStore, ward_key
from stream.state.windows import PatientWindow, WindowStore, packet_index

T0 = 1_700_000_000.0


def packet(pid: str, second: int, bed: str = "bed-1") -> CtgPacket:
    return CtgPacket(patient_id=pid, bed_id=bed, device_id="m", start_ts=T0 + second,
                     fhr=[130.0 + second % 7] * 4, uc=[10.0 + second % 3] * 4, mhr=[80.0] * 4)


def extended(window: PatientWindow, p: CtgPacket) -> PatientWindow:
    window.add(packet_index(p), np.array(p.fhr), np.array(p.uc), np.array(p.mhr))
    return window


async def test_a_batch_of_several_patients_is_stored_trimmed_and_noted(redis) -> None:
    store = WindowStore(redis, capacity_s=10.0)  # 40 samples: the trim moves every packet past the 10th
    windows = {pid: PatientWindow(pid, "bed-1", 10.0) for pid in ("ws-a", "ws-b")}
    for second in range(15):
        batch = [(extended(windows[pid], packet(pid, second)), packet(pid, second)) for pid in windows]
        await store.save_packets(batch, ward_id="w-ws")
    for pid, window in windows.items():
        members = await redis.zrange(f"ctgw:win:{pid}", 0, -1, withscores=True)
        assert [int(s) for _, s in members] == [packet_index(packet(pid, s)) for s in range(4, 15)]  # 10 s and the packet before
        reloaded = await store.load(pid, "bed-1")
        np.testing.assert_array_equal(reloaded.fhr, window.fhr)
        np.testing.assert_array_equal(reloaded.mhr, window.mhr)
        assert await store.already_stored(packet(pid, 14)) and not await store.already_stored(packet(pid, 3))
        status = await PatientStatusStore(redis).read(pid)
        assert status.bed_id == "bed-1" and status.last_packet_at is not None
    ward = dict(await redis.zrange(ward_key("w-ws"), 0, -1, withscores=True))
    assert ward == {b"ws-a": T0 + 15, b"ws-b": T0 + 15}


async def test_a_late_packet_never_moves_the_wards_newest_time_back(redis) -> None:
    store = WindowStore(redis, capacity_s=60.0)
    window = PatientWindow("ws-late", "bed-2", 60.0)
    for second in (0, 1, 2, 5):
        extended(window, packet("ws-late", second, "bed-2"))
    await store.save_packets([(window, packet("ws-late", 5, "bed-2"))], ward_id="w-late")
    await store.save_packets([(window, packet("ws-late", 3, "bed-2"))], ward_id="w-late")  # a hole filled late
    assert await redis.zscore(ward_key("w-late"), "ws-late") == T0 + 6
    assert await redis.zcard("ctgw:win:ws-late") == 2


async def test_without_a_ward_only_the_window_and_the_status_are_written(redis) -> None:
    store = WindowStore(redis, capacity_s=60.0)
    p = packet("ws-solo", 0)
    await store.save_packets([(extended(PatientWindow("ws-solo", "bed-1", 60.0), p), p)])
    assert await redis.zcard("ctgw:win:ws-solo") == 1
    assert (await PatientStatusStore(redis).read("ws-solo")).bed_id == "bed-1"
    assert not [k async for k in redis.scan_iter("ctgw:ward:*")]
