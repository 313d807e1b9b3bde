"""Logging for ctgwatch processes: human-readable text, or one JSON object per line.

With ``CTGWATCH_LOG_FORMAT=json`` every record is a JSON object (time, level,
logger, message and the structured fields passed as ``extra``, e.g.
``patient_id``, ``alert_kind``), ready for a log shipper; the default ``text``
is for a terminal.
"""

from __future__ import annotations

import logging.config
from typing import Any

TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def logging_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    formatter: dict[str, Any] = {"format": TEXT}
    if log_format == "json":
        formatter = {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": TEXT,
                     "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["console"]},
    }


def configure(log_format: str, level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(log_format, level))
