"""Registered devices and their tokens.

A device (bedside monitor, wearable hub, IoMT gateway) is registered with
``ctgwatch gateway add-device ID``, which prints a random token once and
stores only its SHA-256 (tokens are 256-bit random strings, so a fast hash
is the right tool; a slow password hash protects low-entropy passwords).
The HTTP endpoint takes the token as ``Authorization: Bearer <token>``; the
MLLP listener, which has no credentials in HL7 v2, accepts messages only
from registered device ids (MSH-3) and relies on network placement (device
VLAN, TLS tunnel) for the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from stream.core.errors import SetupError

#: The identifier rule of stream.core.schemas.Identifier.
log = logging.getLogger("ctgwatch.gateway")
_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class DeviceRegistry:
    """device id -> token digest, in a JSON file only the service user can read.

    A running gateway follows the file: ``gateway add-device`` / ``remove-device`` (run beside it) take
    effect within ``RECHECK_S``, since every lookup first checks whether the file changed (one ``stat`` a
    second at most). A file that turns unreadable keeps the last good list and is logged.
    """

    RECHECK_S = 1.0

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._by_digest: dict[str, str] = {}
        self._devices: dict[str, dict] = {}
        self._seen: tuple[int, int] | None = None  # the file's (mtime_ns, size) when last read
        self._checked = float("-inf")
        self.reload()

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _follow(self) -> None:
        """Reread the file if it changed since it was last read (checked at most every ``RECHECK_S``)."""
        now = self.clock()
        if now - self._checked < self.RECHECK_S:
            return
        self._checked = now
        if self._signature() != self._seen:
            try:
                self.reload()
                log.info("device list reread: %d device(s)", len(self._devices))
            except SetupError as exc:
                log.error("device list not reread, the last good one stays: %s", exc)

    def reload(self) -> None:
        self._seen = self._signature()
        if not self.path.exists():
            self._devices, self._by_digest = {}, {}
            return
        try:
            data = json.loads(self.path.read_text())
            devices = dict(data["devices"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SetupError(f"device token file {self.path} is unreadable ({exc})",
                             "restore it or register devices again with 'ctgwatch gateway add-device'") from exc
        self._devices = devices
        self._by_digest = {entry["sha256"]: device for device, entry in devices.items()}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"devices": self._devices}, fh, indent=2, sort_keys=True)
        tmp.replace(self.path)

    def add(self, device_id: str) -> str:
        """Register (or re-key) a device; returns the token, which is not stored."""
        if not _ID_OK.match(device_id):
            raise SetupError(f"device id {device_id!r} is not a valid id",
                             "use letters, digits and . _ : - (up to 64 characters)")
        token = secrets.token_urlsafe(32)
        self._devices[device_id] = {"sha256": _digest(token), "created": time.time()}
        self._save()
        self.reload()
        return token

    def remove(self, device_id: str) -> bool:
        found = self._devices.pop(device_id, None) is not None
        if found:
            self._save()
            self.reload()
        return found

    def device_for(self, token: str | None) -> str | None:
        """The device a token belongs to, or None."""
        if not token:
            return None
        self._follow()
        digest = _digest(token)
        device = self._by_digest.get(digest)
        if device is None or not hmac.compare_digest(self._devices[device]["sha256"], digest):
            return None
        return device

    def is_registered(self, device_id: str) -> bool:
        self._follow()
        return device_id in self._devices

    def devices(self) -> list[str]:
        self._follow()
        return sorted(self._devices)
