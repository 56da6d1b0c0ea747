"""Where log lines go and what they look like: text (the default), or one JSON object per line.

`configure_logging` sets up the root logger for the CLI and for each `threshold serve` worker, and
`uvicorn_log_config` the same for uvicorn's own loggers (the server's start and stop, its errors), so that
with `log_format = "json"` every line a process writes is JSON:

    {"time": "2026-12-01T10:00:00.123Z", "level": "info", "logger": "threshold.access",
     "message": "GET /api/v1/session 200 0.4ms rid=...", "method": "GET", "path": "/api/v1/session",
     "status": 200, "duration_ms": 0.4, "request_id": "...", "client_ip": "...", "user_id": "..."}

A record's structured fields come from `extra={"fields": {...}}` (the access log); `trace_id` and
`span_id` are added inside a traced request (threshold.web.tracing). What goes into a message is the
caller's to keep free of secrets: no password, cookie, code or token is logged anywhere.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from threshold.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
CLI_TEXT_FORMAT = "%(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry and v is not None})
        for name in ("trace_id", "span_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)  # ASCII: one line whatever the message holds


def logging_config(settings: Settings, *, text_format: str = TEXT_FORMAT) -> dict[str, Any]:
    """A logging.config.dictConfig: the root logger at the configured level, in the configured format;
    in JSON, uvicorn's loggers write through it too."""
    level = settings.log_level.upper()
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if settings.log_format == "json" else {"format": text_format}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"threshold": formatter},
        "handlers": {
            "threshold": {
                "class": "logging.StreamHandler",
                "formatter": "threshold",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["threshold"]},
        # uvicorn's access log would write each request's query string (codes, tokens): never on;
        # threshold.access logs each request instead
        "loggers": {"uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"}},
    }
    if settings.log_format == "json":
        config["loggers"].update(
            {
                name: {"handlers": [], "propagate": True, "level": level}
                for name in ("uvicorn", "uvicorn.error")
            }
        )
    return config


def configure_logging(settings: Settings, *, text_format: str = TEXT_FORMAT) -> None:
    logging.config.dictConfig(logging_config(settings, text_format=text_format))
    logging.captureWarnings(settings.log_format == "json")  # warnings as log records, JSON like the rest


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's log_config for `threshold serve`: its own (coloured, plain) in text, ours in JSON."""
    if settings.log_format == "json":
        return logging_config(settings)
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
