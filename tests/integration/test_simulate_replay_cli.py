"""`ctgwatch simulate` and `ctgwatch replay` publish into the real broker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from stream.core.schemas import GroundTruth, decode_signal
from tests.helpers import PROJECT_ROOT, env_for, read_topic
from tests.unit.test_vitals_ward_replay import write_record

pytestmark = pytest.mark.integration


def ctgwatch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=180)


def by_patient(bootstrap: str, topic: str, prefix: str, count: int) -> dict[str, list[bytes]]:
    found = asyncio.run(read_topic(bootstrap, topic, until=lambda kept: len(kept) >= count, timeout_s=30,
                                   keep=lambda k, _v: k is not None and k.startswith(prefix.encode())))
    out: dict[str, list[bytes]] = {}
    for key, value in found:
        out.setdefault(key.decode(), []).append(value)
    return out


def test_simulate_publishes_packets_vitals_and_ground_truth(stack) -> None:
    seed = 900 + uuid.uuid4().int % 1000
    result = ctgwatch(["simulate", "--beds", "3", "--speed", "100", "--duration", "300", "--seed", str(seed)],
                      env_for(stack, CTGWATCH_WARD_ID=f"w-{seed}"))  # a ward of its own: its beds are free
    assert result.returncode == 0, result.stderr
    assert "bed-03" in result.stdout and "ctg=late_decelerations" in result.stdout
    wall = float(re.search(r"in ([0-9.]+) s", result.stdout).group(1))
    assert wall >= 2.5, "300 s at speed 100 must take about 3 s (paced, not dumped)"
    prefix = f"sim-{seed}-"
    ctg = by_patient(stack.bootstrap_servers, "ctg.packets", prefix, 900)
    assert sorted(ctg) == [f"{prefix}000", f"{prefix}001", f"{prefix}002"]
    for values in ctg.values():
        packets = [decode_signal(v) for v in values]
        assert len(packets) == 300
        starts = np.array([p.start_ts for p in packets])
        assert np.allclose(np.diff(starts), 1.0)  # contiguous, in order, one per second
    vitals = by_patient(stack.bootstrap_servers, "vitals.observations", prefix, 3)
    assert sum(len(v) for v in vitals.values()) == 3
    truth = by_patient(stack.bootstrap_servers, "sim.groundtruth", prefix, 1)
    events = [GroundTruth.model_validate_json(v) for values in truth.values() for v in values]
    assert any(e.event == "late_deceleration" for e in events)


def test_replay_publishes_a_wfdb_record(stack, tmp_path) -> None:
    name = str(9000 + uuid.uuid4().int % 999)
    n = 4 * 60
    write_record(tmp_path, name, np.full(n, 135.0), np.full(n, 15.0), ["pH           7.31"])
    result = ctgwatch(["replay", str(tmp_path), "--speed", "500"], env_for(stack))
    assert result.returncode == 0, result.stderr
    assert f"ctu-{name}" in result.stdout and "pH=7.31" in result.stdout
    packets = by_patient(stack.bootstrap_servers, "ctg.packets", f"ctu-{name}", 60)[f"ctu-{name}"]
    assert len(packets) == 60
    assert all(decode_signal(v).fhr == [135.0] * 4 for v in packets)


def test_replay_reports_a_missing_directory(stack, tmp_path) -> None:
    result = ctgwatch(["replay", str(tmp_path / "nope")], env_for(stack))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "fix:" in result.stderr


def test_a_source_is_refused_a_bed_a_live_patient_of_another_source_holds(stack) -> None:
    """`simulate` beside a running ward used to put a second patient on bed-01 and bed-02 without a word."""
    from redis import Redis

    from stream.state.patient_status import status_key, ward_key

    ward = f"w-{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(stack.redis_dsn)
    redis.zadd(ward_key(ward), {"live-patient": 1.0})  # what the worker writes for a live bed-02
    redis.hset(status_key("live-patient"), mapping={"bed_id": '"bed-02"', "last_packet_at": str(time.time())})
    result = ctgwatch(["simulate", "--beds", "2", "--duration", "60"], env_for(stack, CTGWATCH_WARD_ID=ward))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "bed-02 is held by live patient live-patient" in lines[0] and "--first-bed 3" in lines[0], lines[0]
    free = ctgwatch(["simulate", "--beds", "1", "--duration", "60", "--speed", "60", "--first-bed", "3"],
                    env_for(stack, CTGWATCH_WARD_ID=ward))
    assert free.returncode == 0, free.stderr
