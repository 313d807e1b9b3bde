"""Detached service processes with pid files, log files and clean shutdown.

Each service runs in its own session (process group), so stopping it also
stops the helper processes it spawns (Triton's Python-backend stubs), and
"no process left behind" can be checked by probing the whole group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stream.core.errors import SetupError


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to find and verify the process again."""

    pid: int
    pgid: int
    command: list[str]
    log: str
    started_at: float
    #: Kernel start time of the process (clock ticks since boot): together
    #: with the pid it identifies the process even after the pid is reused.
    start_ticks: int | None = None


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process of the process group exists.

    Zombies are ignored: an exited service whose parent has not reaped it yet
    (init in a container may take seconds) holds no port and does no work.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) is not a running service.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class ManagedProcess:
    """One service process, tracked through ``<run_dir>/<name>.pid``."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_dir / f"{name}.log"

    def record(self) -> PidRecord | None:
        """The pid record if the file exists and its process still runs."""
        try:
            data = json.loads(self.pid_file.read_text())
            rec = PidRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if pid_alive(rec.pid) and self._is_same_program(rec):
            return rec
        return None

    def crashed(self) -> PidRecord | None:
        """The record of a run that ended without ``stop`` (killed, crashed): its pid file is left."""
        try:
            rec = PidRecord(**json.loads(self.pid_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return None if self.record() is not None else rec

    def stale_group(self) -> PidRecord | None:
        """A record whose main process is gone but whose group still has members."""
        try:
            rec = PidRecord(**json.loads(self.pid_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return rec if group_alive(rec.pgid) else None

    @staticmethod
    def _is_same_program(rec: PidRecord) -> bool:
        """Guard against pid reuse: the process must have the start time we recorded."""
        if rec.start_ticks is None:
            return True
        ticks = _start_ticks(rec.pid)
        return ticks is None or ticks == rec.start_ticks

    def start(self, command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> PidRecord:
        """Start the command detached, in its own session, logging to the log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- ctgwatch: starting {' '.join(command)} at {time.ctime()} ---\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except FileNotFoundError as exc:
                raise SetupError(f"{self.name} binary {command[0]!r} not found", "install it (see README)") from exc
            except PermissionError as exc:
                raise SetupError(f"{self.name} binary {command[0]!r} is not executable", "chmod +x it") from exc
        rec = PidRecord(
            pid=proc.pid, pgid=proc.pid, command=command, log=str(self.log_file),
            started_at=time.time(), start_ticks=_start_ticks(proc.pid),
        )
        self.pid_file.write_text(json.dumps(rec.__dict__))
        return rec

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM the whole group, SIGKILL what is left after the timeout.

        Returns True when something was stopped. Afterwards no process of the
        group is left and the pid file is gone.
        """
        rec = self.record() or self.stale_group()
        if rec is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal_group(rec.pgid, signal.SIGTERM)
        if not _wait_gone(rec, timeout_s, 0.1):
            self._signal_group(rec.pgid, signal.SIGKILL)
            _wait_gone(rec, 5.0, 0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL the whole group at once (a crash, for fault injection); True if it ran.

        The pid file is left behind on purpose, as a crash leaves it: ``up`` then
        knows this service ran before and died.
        """
        rec = self.record() or self.stale_group()
        if rec is None:
            return False
        self._signal_group(rec.pgid, signal.SIGKILL)
        _wait_gone(rec, 5.0, 0.05)
        return True

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (process start time); None without /proc."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _wait_gone(rec: PidRecord, timeout_s: float, poll_s: float) -> bool:
    """Reap and wait until no process of the group is left; False if some still run after the timeout."""
    deadline = time.monotonic() + timeout_s
    while group_alive(rec.pgid) and time.monotonic() < deadline:
        _reap(rec.pid)
        time.sleep(poll_s)
    _reap(rec.pid)
    return not group_alive(rec.pgid)


def _reap(pid: int) -> None:
    """Collect the exit status when the service is our own child (tests, `up` then `down`)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
