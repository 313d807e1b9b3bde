"""`ctgwatch up / status / down` as an operator runs them, and the one-line
errors for bad settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.launcher.process import group_alive
from stream.core.ports import free_port
from tests.helpers import FIXTURES

pytestmark = pytest.mark.integration

CTGWATCH = [sys.executable, "-m", "stream.cli"]


def _env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTGWATCH_")}
    env.update(
        CTGWATCH_STATE_DIR=str(state_dir),
        CTGWATCH_BROKER_PORT=str(free_port()),
        CTGWATCH_REDIS_PORT=str(free_port()),
        CTGWATCH_TRITON_HTTP_PORT=str(free_port()),
        CTGWATCH_TRITON_GRPC_PORT=str(free_port()),
        CTGWATCH_TRITON_METRICS_PORT=str(free_port()),
        CTGWATCH_TRITON_MODEL_REPOSITORY=str(FIXTURES / "triton_repository"),
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CTGWATCH + args, env=env, capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ctgwatch: error: ") and "; fix: " in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    env = _env(tmp_path)
    up = _run(["up"], env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "run").glob("*.pid")}
        assert set(pids) == {"broker", "redis", "triton"}

        st = _run(["status"], env)
        assert st.returncode == 0, st.stdout + st.stderr
        rows = {line.split()[0]: line for line in st.stdout.splitlines()[1:]}
        assert set(rows) == {"broker", "redis", "triton", "lag", "heartbeat"}
        assert "no committed offsets yet" in rows.pop("lag")
        assert "no worker has reported" in rows.pop("heartbeat")
        assert all(" healthy " in row for row in rows.values()), st.stdout
        assert "tansu 0." in rows["broker"]
        assert "redis " in rows["redis"]
        assert "triton 2." in rows["triton"]

        again = _run(["up"], env)
        assert again.returncode == 0 and again.stdout.count("already up") == 3, again.stdout
    finally:
        down = _run(["down"], env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count("stopped") == 3
    for name, rec in pids.items():
        assert not group_alive(rec["pgid"]), f"{name} left a process behind"
    assert not list((tmp_path / "run").glob("*.pid"))
    after = _run(["status"], env)
    assert after.returncode == 1 and after.stdout.count(" DOWN ") == 3
    # what is unknown while the services are down is said, not hidden
    assert "unknown (broker down)" in after.stdout and "unknown (redis down)" in after.stdout, after.stdout


def test_up_with_the_ward_runs_the_main_job(tmp_path: Path) -> None:
    """`make demo`: the stack, a worker and simulated monitors; alarms and notices appear apart, only where a
    scenario carries a real problem; down stops everything."""
    import time

    env = _env(tmp_path, CTGWATCH_DEMO_BEDS="3", CTGWATCH_DEMO_SPEED="150", CTGWATCH_DEMO_REPLAY_RECORDS="0",
               CTGWATCH_WORKER_METRICS_PORT="0", CTGWATCH_WORKER_SESSION_TIMEOUT_S="6",
               CTGWATCH_WORKER_HEARTBEAT_S="1", CTGWATCH_DASHBOARD_PORT=str(free_port()))
    up = _run(["up", "--ward"], env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "worker    started" in up.stdout and "simulator started" in up.stdout
        deadline = time.monotonic() + 90
        listing = ""
        while time.monotonic() < deadline:
            listing = _run(["alerts"], env).stdout
            if "ctg_alarm" in listing and "repetitive_decelerations" in listing and "maternal_alarm" in listing:
                break
            time.sleep(2)
        alarms, _, notices = listing.partition("open alarm(s)")
        # bed 3: late decelerations -> pathological CTG, one CTG alarm; beds 2-3: maternal deteriorations
        assert "bed-03" in alarms and "ctg_alarm" in alarms and "maternal_alarm" in alarms, listing
        assert "bed-01" not in alarms, listing  # bed 1: a normal labour (short signal losses are notices at most)
        assert "repetitive_decelerations" in notices and "no acknowledgement" in notices, listing  # bed 2: early decels
        st = _run(["status"], env)
        assert st.returncode == 0 and "worker    process" in st.stdout and "record(s) behind" in st.stdout, st.stdout
        pids = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "run").glob("*.pid")}
        assert set(pids) == {"broker", "redis", "triton", "worker", "dashboard", "simulator", "supervisor"}
        # kill -9 the worker: the supervisor starts it again, and status says so
        os.killpg(pids["worker"]["pgid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = _run(["status"], env)
            if "restarts  worker: 1" in st.stdout and "worker    process" in st.stdout and "STOPPED" not in st.stdout:
                break
            time.sleep(1)
        assert "restarts  worker: 1" in st.stdout and "STOPPED" not in st.stdout, st.stdout
        pids = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "run").glob("*.pid")}
        import httpx

        health = httpx.get(f"http://127.0.0.1:{env['CTGWATCH_DASHBOARD_PORT']}/health")
        assert health.json() == {"status": "ok"}
    finally:
        down = _run(["down"], env)
    assert down.returncode == 0 and "worker    stopped" in down.stdout and "simulator stopped" in down.stdout
    assert "dashboard stopped" in down.stdout
    for name, rec in pids.items():
        assert not group_alive(rec["pgid"]), f"{name} left a process behind"


def test_port_taken_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = _run(["up"], _env(tmp_path, CTGWATCH_BROKER_PORT=str(port)))
    _assert_one_line_error(result, f"port {port}", "already in use", "CTGWATCH_BROKER_PORT")
    assert not list(tmp_path.glob("run/*.pid"))


def test_missing_binary_is_one_clear_line_and_stops_what_it_started(tmp_path: Path) -> None:
    result = _run(["up"], _env(tmp_path, CTGWATCH_REDIS_SERVER_BIN="/nonexistent/redis-server"))
    _assert_one_line_error(result, "redis-server", "not found", "apt-get install redis-server")
    # The broker it had already started is stopped again: no half-started stack.
    assert not list((tmp_path / "run").glob("*.pid"))


def test_unreachable_broker_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _run(["up"], _env(tmp_path, CTGWATCH_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}"))
    _assert_one_line_error(result, f"127.0.0.1:{port}", "unreachable", "CTGWATCH_KAFKA_BOOTSTRAP")


def test_invalid_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = _run(["status"], _env(tmp_path, CTGWATCH_REDIS_PORT="not-a-port"))
    _assert_one_line_error(result, "CTGWATCH_REDIS_PORT", "not-a-port")


def test_a_taken_dashboard_port_stops_the_demo_before_anything_starts(tmp_path: Path) -> None:
    """`make demo` with the dashboard's port taken: one line naming the setting, exit 2, and no broker, Redis,
    Triton or worker left running (they used to stay up, with a stale heartbeat in `status`)."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = _run(["up", "--ward", "--fresh"], _env(tmp_path, CTGWATCH_DASHBOARD_PORT=str(port),
                                                          CTGWATCH_DEMO_REPLAY_RECORDS="0"))
    _assert_one_line_error(result, f"port {port}", "CTGWATCH_DASHBOARD_PORT")
    assert not list((tmp_path / "run").glob("*.pid"))
