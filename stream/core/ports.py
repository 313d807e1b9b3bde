"""Checking loopback ports before a service binds them, so a taken port is one clear line, not a traceback."""

from __future__ import annotations

import errno
import socket

from stream.core.errors import SetupError


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked by binding to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def require_free_ports(service: str, host: str, ports: dict[str, int]) -> None:
    """Fail with the setting to change when one of the service's ports is taken."""
    for setting, port in ports.items():
        if not port_is_free(host, port):
            raise SetupError(
                f"port {port} on {host} for {service} is already in use by another process",
                f"stop that process or choose another port with CTGWATCH_{setting.upper()}=<free port>",
            )


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (for tests and ad-hoc stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
