"""The ward's supervisor starts a dead worker, station or gateway again, with a backoff, and says so."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from infra.launcher.process import ManagedProcess
from infra.launcher.supervisor import Supervisor, restart_report
from stream.core.settings import Settings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _kill(proc: ManagedProcess) -> None:
    rec = proc.record()
    assert rec is not None
    os.killpg(rec.pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.record() is not None and time.monotonic() < deadline:
        try:
            os.waitpid(rec.pid, os.WNOHANG)  # the test process is its parent: reap it
        except ChildProcessError:
            pass
        time.sleep(0.05)


def test_a_killed_worker_is_started_again_with_a_growing_backoff_and_status_says_so(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    worker = ManagedProcess("worker", settings.run_dir, settings.log_dir)
    worker.start(SLEEPER)
    lines: list[str] = []
    supervisor = Supervisor(settings, {"worker": SLEEPER}, echo=lines.append, first_backoff_s=5, max_backoff_s=20)
    try:
        assert supervisor.round(now=0.0) == []  # running: nothing to do
        _kill(worker)
        assert supervisor.round(now=1.0) == ["worker"] and worker.record() is not None
        _kill(worker)  # dies again at once: the next start waits for the backoff
        assert supervisor.round(now=2.0) == []
        assert supervisor.round(now=6.5) == ["worker"]
        _kill(worker)
        assert supervisor.round(now=10.0) == []  # the backoff doubled to 10 s
        assert supervisor.round(now=17.0) == ["worker"]
        assert supervisor.restarts["worker"].count == 3
        assert len(lines) == 3 and "started again (restart 1" in lines[0]
        (report,) = restart_report(settings)
        assert report.startswith("restarts  worker: 3 (last at")
    finally:
        worker.stop(5)


def test_a_process_stopped_by_down_is_not_started_again(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    dashboard = ManagedProcess("dashboard", settings.run_dir, settings.log_dir)
    dashboard.start(SLEEPER)
    supervisor = Supervisor(settings, {"dashboard": SLEEPER}, echo=lambda _line: None)
    dashboard.stop(5)
    assert supervisor.round(now=100.0) == [] and dashboard.record() is None
