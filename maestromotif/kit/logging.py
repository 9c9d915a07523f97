"""Structured logs: JSON lines when stderr is not a terminal, with service name and request id.

The server interceptor sets :data:`request_id_var` for the duration of each call
(from the caller's ``x-request-id`` metadata, or a fresh id), so every log line a
handler writes carries it without passing it around. The client helper forwards
the current request id to peers, so one id follows a request across services.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from typing import Any, Literal, TextIO

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("maestromotif_request_id", default=None)
_service_name = "maestromotif"

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


class _ContextFilter(logging.Filter):
    """Adds ``service`` and ``request_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "service"):
            record.service = _service_name
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, request_id, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": getattr(record, "service", _service_name),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key in _STANDARD_ATTRS or key in out or key in ("service", "request_id"):
                continue
            out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal; extra fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        rid = getattr(record, "request_id", None)
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and k not in ("service", "request_id")
        )
        line = f"{ts} {record.levelname:<7} {getattr(record, 'service', _service_name)} {record.name}: {record.getMessage()}"
        if rid:
            line += f" [rid={rid[:12]}]"
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: Literal["auto", "json", "text"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Route the root logger to ``stream`` (stderr) in JSON or text form. Idempotent."""
    global _service_name
    _service_name = service
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not (hasattr(stream, "isatty") and stream.isatty()))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_ContextFilter())
    handler._maestromotif = True  # type: ignore[attr-defined]  # marks ours, so a second call replaces it
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_maestromotif", False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
