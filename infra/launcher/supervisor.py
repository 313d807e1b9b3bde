"""Keeps the ward's long-running processes up: a worker, station or gateway that dies is started again.

``ctgwatch up --ward`` starts this supervisor (``ctgwatch supervise``) beside the processes it starts. Every
``poll_s`` it looks at each supervised process: one whose pid file is left but whose process is gone died
without ``ctgwatch down`` (killed, crashed, out of memory), and is started again with the command and
environment ``up`` gave it, after a backoff that doubles with each restart in a row (``first_backoff_s`` up
to ``max_backoff_s``) and starts again from the first once a run has lasted ``stable_s``. Each restart is
one line in the supervisor's log and is kept in ``<run dir>/supervisor.json``, which ``ctgwatch status``
reads. ``ctgwatch down`` stops the supervisor first, so nothing it stops is started again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.launcher.broker_loss import LAG_EVERY_S, record_group_lag
from infra.launcher.process import ManagedProcess
from stream.core.settings import Settings

Echo = Callable[[str], None]
#: What a ward's supervisor keeps running (the simulator and the replayer are demo sources: not restarted).
SUPERVISED = ("worker", "dashboard", "gateway")


@dataclass
class Restarts:
    """One process's restarts, as ``status`` shows them."""

    count: int = 0
    last_at: float | None = None  # when it was last started again (Unix time)
    last_died_after_s: float | None = None  # how long the run before it had lasted
    backoff_s: float = 0.0  # the wait before the next restart, should it die again
    next_try: float = 0.0  # monotonic time before which it is not started again


@dataclass
class Supervisor:
    """One round at a time (:meth:`round`); :func:`run_supervisor` loops it."""

    settings: Settings
    commands: dict[str, list[str]]  # process name -> the command ``up`` started it with
    echo: Echo = print
    first_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    stable_s: float = 120.0
    restarts: dict[str, Restarts] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.settings.run_dir / "supervisor.json"

    def _managed(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.settings.run_dir, self.settings.log_dir)

    def round(self, now: float | None = None) -> list[str]:
        """Start again each supervised process that died (once its backoff has passed); returns their names."""
        now = time.monotonic() if now is None else now
        started = []
        for name, command in self.commands.items():
            proc = self._managed(name)
            dead = proc.crashed()
            if dead is None:
                continue
            state = self.restarts.setdefault(name, Restarts())
            if now < state.next_try:
                continue
            lasted = time.time() - dead.started_at
            state.backoff_s = (self.first_backoff_s if lasted >= self.stable_s or not state.backoff_s
                               else min(state.backoff_s * 2, self.max_backoff_s))
            proc.start(command, env={**os.environ, **self.settings.client_env()})
            state.count += 1
            state.last_at, state.last_died_after_s = time.time(), round(lasted, 1)
            state.next_try = now + state.backoff_s
            self.echo(f"{name} had stopped (pid {dead.pid}, after {lasted:.0f} s): started again "
                      f"(restart {state.count}; another death waits {state.backoff_s:.0f} s)")
            started.append(name)
        if started:
            self._save()
        return started

    def _save(self) -> None:
        data = {name: {k: v for k, v in asdict(r).items() if k != "next_try"} for name, r in self.restarts.items()}
        self.state_file.write_text(json.dumps(data))


def supervised_commands(settings: Settings) -> dict[str, list[str]]:
    """The supervised processes running now, with the commands they were started with."""
    out = {}
    for name in SUPERVISED:
        rec = ManagedProcess(name, settings.run_dir, settings.log_dir).record()
        if rec is not None:
            out[name] = rec.command
    return out


def run_supervisor(settings: Settings, poll_s: float = 1.0) -> None:
    """Supervise until SIGTERM (``ctgwatch down``)."""
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    commands = supervised_commands(settings)
    supervisor = Supervisor(settings, commands, echo=lambda line: print(line, flush=True))
    print(f"supervising {', '.join(commands) or 'nothing'}", flush=True)
    measured = float("-inf")
    while not stopping:
        supervisor.round()
        _reap_children()
        if time.monotonic() - measured >= LAG_EVERY_S:
            measured = time.monotonic()
            try:  # what a broker that dies now takes with it (ctgwatch up reports it: broker_loss.py)
                record_group_lag(settings)
            except Exception:  # noqa: BLE001 (the broker or Redis away: the last measurement stands)
                pass
        time.sleep(poll_s)
    sys.exit(0)


def _reap_children() -> None:
    """Collect the exit status of children that died, so they do not linger as zombies."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def restart_report(settings: Settings) -> list[str]:
    """One line per supervised process that was started again, for ``ctgwatch status``."""
    try:
        data = json.loads((settings.run_dir / "supervisor.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    lines = []
    for name, r in sorted(data.items()):
        when = time.strftime("%H:%M:%S", time.localtime(r["last_at"])) if r.get("last_at") else "?"
        lines.append(f"restarts  {name}: {r['count']} (last at {when}, after a run of {r['last_died_after_s']:.0f} s)")
    return lines
