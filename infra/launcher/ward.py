"""The living ward of ``make demo``: worker, simulated monitors and replayed recordings
running in the background next to the embedded stack, stopped by ``ctgwatch down``.

Each is a ``ctgwatch`` subcommand run as a managed process (own process
group, pid file, log under the state directory), so the same commands an
operator would type are what the demo runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra.launcher.process import ManagedProcess
from stream.core.errors import SetupError
from stream.core.ports import require_free_ports
from stream.core.settings import Settings

Echo = Callable[[str], None]


@dataclass(frozen=True)
class WardProcess:
    name: str
    args: list[str]
    ready: str  # text in its log that says it is running


def ward_processes(settings: Settings) -> list[WardProcess]:
    procs = [
        WardProcess("worker", ["worker"], "[^Worker]: Ready"),
        WardProcess("dashboard", ["dashboard"], "dashboard ready"),
        WardProcess("simulator", ["simulate", "--beds", str(settings.demo_beds), "--speed", str(settings.demo_speed),
                                  "--seed", "1", "--follow"], "bed-01"),
    ]
    if settings.demo_replay_records and (settings.ctu_uhb_dir / "RECORDS").exists():
        # Replayed patients take the beds after the simulated ones: one patient per bed on the ward page.
        first = settings.demo_beds + 1
        procs.append(WardProcess("replayer", ["replay", str(settings.ctu_uhb_dir), "--limit",
                                              str(settings.demo_replay_records), "--speed", "1",
                                              "--first-bed", str(first)], f"bed-{first:02d}"))
    # last: it supervises what runs when it starts (infra/launcher/supervisor.py)
    procs.append(WardProcess("supervisor", ["supervise"], "supervising"))
    return procs


def _managed(settings: Settings, name: str) -> ManagedProcess:
    return ManagedProcess(name, settings.run_dir, settings.log_dir)


def start_ward(settings: Settings, echo: Echo = print) -> None:
    """Start the ward's processes that are not running (``up`` has checked their ports with
    :func:`check_ward_ports` before anything started). On a failure, the processes this call started
    are stopped again, so that a half-started ward is not left behind.
    """
    env = {**os.environ, **settings.client_env()}
    started: list[ManagedProcess] = []
    try:
        for wp in ward_processes(settings):
            proc = _managed(settings, wp.name)
            if proc.record() is not None:
                echo(f"{wp.name:<9} running (already up)")
                continue
            offset = proc.log_file.stat().st_size if proc.log_file.exists() else 0
            if wp.name == "supervisor":
                (settings.run_dir / "supervisor.json").unlink(missing_ok=True)  # this run's restarts only
            rec = proc.start([sys.executable, "-m", "stream.cli", *wp.args], env=env)
            started.append(proc)
            deadline = time.monotonic() + settings.startup_timeout_s
            while wp.ready.encode() not in proc.log_file.read_bytes()[offset:]:
                if proc.record() is None:
                    raise SetupError(f"{wp.name} exited during start-up: {proc.log_tail(3)}", f"read {proc.log_file}")
                if time.monotonic() > deadline:
                    raise SetupError(f"{wp.name} not running after {settings.startup_timeout_s:.0f} s",
                                     f"read {proc.log_file}")
                time.sleep(0.3)
            echo(f"{wp.name:<9} started   pid {rec.pid}  log {proc.log_file}")
    except BaseException:
        for proc in reversed(started):
            proc.stop(settings.shutdown_timeout_s)
        raise


def check_ward_ports(settings: Settings) -> None:
    """The dashboard's port must be free unless our dashboard already holds it (one line naming the setting)."""
    if _managed(settings, "dashboard").record() is None:
        require_free_ports("dashboard", settings.host, {"dashboard_port": settings.dashboard_port})


def worker_started_at(settings: Settings) -> float | None:
    """When the ward's worker process (started by ``up --ward``) started; None if it is not running."""
    rec = _managed(settings, "worker").record()
    return None if rec is None else rec.started_at


#: Stopped in this order: the supervisor first, so that nothing stopped is started again.
WARD_NAMES = ("supervisor", "replayer", "simulator", "dashboard", "worker")


def stop_ward(settings: Settings, echo: Echo = print) -> None:
    for name in WARD_NAMES:
        if _managed(settings, name).stop(settings.shutdown_timeout_s):
            echo(f"{name:<9} stopped")


def ward_status(settings: Settings) -> list[tuple[str, int | None]]:
    out = []
    for name in ("worker", "dashboard", "simulator", "replayer", "supervisor"):
        proc = _managed(settings, name)
        if proc.pid_file.exists():
            rec = proc.record()
            out.append((name, rec.pid if rec else None))
    return out
