"""Every command that needs the stack, run while it is down: one line naming the service and the fix, exit 2,
never a traceback (a newcomer adding a user before `make demo` used to get 95 lines of Python)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.core.ports import free_port
from stream.core.settings import PROJECT_ROOT

COMMANDS = [
    ["alerts"], ["users", "list"], ["users", "add", "ann", "--password-stdin"], ["users", "passwd", "ann", "--password-stdin"],
    ["users", "disable", "ann"], ["users", "remove", "ann"], ["deadletter", "list"],
    ["deadletter", "replay", "--code", "schema"], ["topics"], ["simulate", "--beds", "1", "--duration", "60"],
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """All the commands at once (each starts a Python), against ports nothing listens on."""
    state = tmp_path_factory.mktemp("down")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(state), "CTGWATCH_STATE_DIR": str(state),
           "CTGWATCH_REDIS_PORT": str(free_port()), "CTGWATCH_BROKER_PORT": str(free_port())}
    procs = {" ".join(c): subprocess.Popen([sys.executable, "-m", "stream.cli", *c], cwd=PROJECT_ROOT, env=env,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in COMMANDS}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate("a-long-enough-password\n", timeout=120)
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("command", [" ".join(c) for c in COMMANDS])
def test_a_command_with_the_stack_down_says_so_in_one_line(runs: dict[str, subprocess.CompletedProcess], command: str) -> None:
    r = runs[command]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert lines[0].startswith("ctgwatch: error: ") and ("unreachable" in lines[0] or "cannot reach" in lines[0]), lines
    assert "fix:" in lines[0] and ("Redis" in lines[0] or "broker" in lines[0])


def test_status_never_shows_an_earlier_runs_heartbeat_as_the_running_workers() -> None:
    from stream.cli import heartbeat_line

    now = 10_000.0
    assert "earlier run" in heartbeat_line(age=600.0, worker_started=now - 30, now=now, stale_s=30)
    assert heartbeat_line(age=2.0, worker_started=now - 30, now=now, stale_s=30) == "heartbeat worker reported 2 s ago"
    assert "STALE" in heartbeat_line(age=600.0, worker_started=None, now=now, stale_s=30)  # an external worker
    assert heartbeat_line(None, None, now, 30) == "heartbeat no worker has reported"


def test_the_gateway_refuses_to_listen_off_loopback_without_mllp_credentials(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CTGWATCH_STATE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "stream.cli", "gateway", "--host", "0.0.0.0"], cwd=PROJECT_ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "CTGWATCH_GATEWAY_MLLP_ALLOW" in lines[0], r.stderr
