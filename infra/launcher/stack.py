"""Bring the stack up, take it down, and report its health."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from infra.launcher.process import ManagedProcess
from infra.launcher.services import ProbeFailed, Service, build_services
from stream.core.errors import SetupError
from stream.core.ports import require_free_ports
from stream.core.settings import Settings

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    mode: str  # "embedded" or "external"
    address: str
    pid: int | None
    healthy: bool
    version: str  # version when healthy, the reason otherwise


def _process(settings: Settings, service: Service) -> ManagedProcess:
    return ManagedProcess(service.name, settings.run_dir, settings.log_dir)


def wait_ready(service: Service, proc: ManagedProcess | None, timeout_s: float) -> str:
    """Probe until the service answers; fail fast if its process dies."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.record() is None:
            raise SetupError(
                f"{service.name} exited during start-up: {proc.log_tail(3) or 'no output'}",
                f"read {proc.log_file} for the cause",
            )
        try:
            return service.probe(min(2.0, max(0.5, deadline - time.monotonic())))
        except ProbeFailed as exc:
            last = str(exc)
        time.sleep(0.25)
    if proc is None:
        raise service.unreachable(last)
    raise SetupError(
        f"{service.name} did not become ready within {timeout_s:.0f} s ({last})",
        f"read {proc.log_file}; raise CTGWATCH_STARTUP_TIMEOUT_S if the machine is slow",
    )


def selected(settings: Settings, only: Collection[str] | None) -> list[Service]:
    """The stack's services, or those named in ``only`` (tests and fault injection start part of it)."""
    services = build_services(settings)
    if only is None:
        return services
    unknown = set(only) - {s.name for s in services}
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
    return [s for s in services if s.name in only]


def up(settings: Settings, echo: Echo = print, only: Collection[str] | None = None) -> list[ServiceStatus]:
    """Start every embedded service that is not running, check external ones.

    On a failure, the services this call started are stopped again so that a
    half-started stack is not left behind. A service whose last run died
    (its pid file is left) is named as restarted, with what it lost.
    """
    started: list[ManagedProcess] = []
    try:
        for service in selected(settings, only):
            if service.external:
                version = wait_ready(service, None, min(settings.startup_timeout_s, 10.0))
                echo(f"{service.name:<7} external  {service.address}  {version}")
            else:
                proc = _process(settings, service)
                if proc.record() is not None:
                    version = wait_ready(service, proc, settings.startup_timeout_s)
                    echo(f"{service.name:<7} running   {service.address}  {version} (already up)")
                else:
                    require_free_ports(service.name, settings.host, service.ports())
                    crashed = proc.crashed()
                    command = service.command()
                    t0 = time.monotonic()
                    started.append(proc)
                    proc.start(command, env=service.env())
                    version = wait_ready(service, proc, settings.startup_timeout_s)
                    echo(f"{service.name:<7} started   {service.address}  {version} in {time.monotonic() - t0:.1f} s")
                    note = service.after_crash() if crashed is not None else None
                    if note and crashed is not None:
                        echo(f"{'':<7} {note} (previous run started {time.ctime(crashed.started_at)})")
                        if service.name == "broker":
                            from infra.launcher.broker_loss import record_broker_loss

                            echo(f"{'':<7} {record_broker_loss(settings)}")
            summary = service.after_ready()
            if summary:
                echo(f"{'':<7} {summary}")
    except BaseException:
        for proc in reversed(started):
            proc.stop(settings.shutdown_timeout_s)
        raise
    return status(settings)


def down(settings: Settings, echo: Echo = print, only: Collection[str] | None = None) -> list[str]:
    """Stop the embedded services (reverse start order); returns those stopped."""
    stopped = []
    for service in reversed(selected(settings, only)):
        if service.external:
            continue
        if _process(settings, service).stop(settings.shutdown_timeout_s):
            stopped.append(service.name)
            echo(f"{service.name:<7} stopped")
        else:
            echo(f"{service.name:<7} not running")
    return stopped


def kill(settings: Settings, name: str) -> bool:
    """SIGKILL one embedded service (fault injection); True if it was running."""
    (service,) = selected(settings, [name])
    return _process(settings, service).kill()


def status(settings: Settings) -> list[ServiceStatus]:
    """Health and version of each service, asked over its own protocol."""
    rows = []
    for service in build_services(settings):
        pid = None
        if not service.external:
            rec = _process(settings, service).record()
            pid = rec.pid if rec else None
        try:
            version, healthy = service.probe(3.0), True
        except ProbeFailed as exc:
            version, healthy = str(exc), False
        rows.append(
            ServiceStatus(
                name=service.name,
                mode="external" if service.external else "embedded",
                address=service.address,
                pid=pid,
                healthy=healthy,
                version=version,
            )
        )
    return rows
