"""Logging for ctgwatch processes: human-readable text, or one JSON object per line.

With ``CTGWATCH_LOG_FORMAT=json`` every record is a JSON object (time, level,
logger, message and the structured fields passed as ``extra``, e.g.
``patient``, ``alert_kind``), ready for a log shipper; the default ``text``
is for a terminal.

Logs leave the clinical system (shippers, tickets, screenshots), so they name a
patient only by a pseudonym: a keyed hash of the id (:func:`pseudonym`) with a
key kept in the state directory, the same in every process of an installation
(so an operator can follow one patient through the logs) and useless without
it (a medical record number cannot be recovered by hashing candidates). The
data itself (alerts, dead letters) keeps the real id.

Client libraries that retry a lost connection log the same error several
times a second; :class:`RepeatFilter` lets one line per message through every
``every_s`` and says how many it held back.
"""

from __future__ import annotations

import hashlib
import hmac
import logging.config
import os
import secrets
import time
from pathlib import Path
from typing import Any

TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
KEY_FILE = "log-pseudonym.key"


def pseudonym_key(state_dir: Path) -> bytes:
    """This installation's pseudonym key (created on first use, readable by the service user only)."""
    path = state_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return bytes.fromhex(path.read_text().strip())
        with os.fdopen(fd, "w") as out:
            out.write(key)
        return bytes.fromhex(key)


def pseudonym(patient_id: str | None, key: bytes) -> str:
    """``p-`` and 12 hex digits of HMAC-SHA256(key, id); ``-`` when there is no id."""
    if not patient_id:
        return "-"
    return "p-" + hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:12]


class RepeatFilter(logging.Filter):
    """At most one record per (logger, message template) every ``every_s`` for the chatty client libraries."""

    PREFIXES = ("aiokafka", "kafka", "faust.transport")

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.PREFIXES):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (float("-inf"), 0))
        if now - last < self.every_s:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s]"
        return True


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    formatter: dict[str, Any] = {"format": TEXT}
    if log_format == "json":
        formatter = {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": TEXT,
                     "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "filters": {"repeats": {"()": RepeatFilter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr",
                                 "filters": ["repeats"]}},
        "root": {"level": level.upper(), "handlers": ["console"]},
    }


def configure(log_format: str, level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(log_format, level))
